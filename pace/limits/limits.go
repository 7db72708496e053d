// Package limits sets canaryd's client-side rate limit on a client-go config: one
// pace.Limiter, shared by every client made from it. It is apart from pace so that the
// controller, which marks rollbacks' requests with pace.Backward, does not depend on
// client-go.
package limits

import (
	"k8s.io/client-go/rest"

	"github.com/canarydio/canaryd/pace"
)

// The client-side rate limits canaryd ships. client-go's defaults (5 requests
// per second, bursts of 10) would let a rollback of many rollouts at once
// queue for minutes. A weight change is one request while no one else writes
// the object (the update starts from the API server's last answer), so 100/200
// puts a mass rollback of 1,000 VirtualServices in the cluster in about 9 s,
// while staying a small share of an API server's priority-and-fairness budget.
// See istio's BenchmarkManyVirtualServices and test/serve's BenchmarkMassRollbackApply.
const (
	DefaultQPS   = 100
	DefaultBurst = 200
)

// Configure returns a copy of cfg limited to qps requests a second (0: DefaultQPS) in
// bursts of burst (0 or less: DefaultBurst) by a pace.Limiter that every client made from
// the copy shares; a negative qps is no client-side limit. When cfg sets a limit of its own
// (a RateLimiter, QPS or Burst), the copy keeps it.
func Configure(cfg *rest.Config, qps float32, burst int) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	if cfg.RateLimiter != nil || cfg.QPS != 0 || cfg.Burst != 0 {
		return cfg
	}
	if qps < 0 {
		cfg.QPS = -1 // client-go: no limit
		return cfg
	}
	if qps == 0 {
		qps = DefaultQPS
	}
	if burst <= 0 {
		burst = DefaultBurst
	}
	cfg.RateLimiter = pace.New(float64(qps), burst)
	return cfg
}
