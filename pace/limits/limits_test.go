package limits

import (
	"testing"

	"k8s.io/client-go/rest"

	"github.com/canarydio/canaryd/pace"
)

func TestConfigure(t *testing.T) {
	base := &rest.Config{Host: "https://127.0.0.1:6443"}

	got := Configure(base, 0, 0)
	l, ok := got.RateLimiter.(*pace.Limiter)
	if !ok || l.QPS() != DefaultQPS {
		t.Fatalf("zero limits: RateLimiter %T %v, want a pace.Limiter at %d qps", got.RateLimiter, got.RateLimiter, DefaultQPS)
	}
	if base.RateLimiter != nil || got == base {
		t.Error("Configure changed the config it was given")
	}
	if a, b := Configure(base, 0, 0), Configure(base, 0, 0); a.RateLimiter == b.RateLimiter {
		t.Error("two configs share one limiter: each call is its own budget")
	}

	if got := Configure(base, 7, 3); got.RateLimiter.(*pace.Limiter).QPS() != 7 {
		t.Errorf("qps 7: limiter at %v", got.RateLimiter.QPS())
	}

	if got := Configure(base, -1, 0); got.RateLimiter != nil || got.QPS >= 0 {
		t.Errorf("negative qps: RateLimiter %v, QPS %v; want none and client-go's no-limit", got.RateLimiter, got.QPS)
	}

	own := &rest.Config{Host: base.Host, QPS: 5, Burst: 10}
	if got := Configure(own, 0, 0); got.RateLimiter != nil || got.QPS != 5 || got.Burst != 10 || got == own {
		t.Errorf("a config with its own limits: %v/%v %v, want a copy that keeps 5/10", got.QPS, got.Burst, got.RateLimiter)
	}
}
