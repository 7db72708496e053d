package analysis

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/greeter"
)

// TestEgressAtDialTime: a spec names its probe and Prometheus by a host name ("localhost"),
// which no rule refuses as written; it resolves to a loopback address that egress.deny
// names, and every gate is refused when it dials, with an error verdict that says why.
// The same spec passes its probe under rules that deny nothing.
func TestEgressAtDialTime(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gRPC and an HTTP server; run without -short")
	}
	_, addr := serveGreeter(t, greeter.Options{Instance: "v2-pod", Reflection: true}, "127.0.0.1:0")
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the refused Prometheus was reached: %s", r.URL)
	}))
	t.Cleanup(prom.Close)
	_, port, _ := net.SplitHostPort(addr)
	_, promPort, _ := net.SplitHostPort(strings.TrimPrefix(prom.URL, "http://"))
	doc := parseSpec(t, "http://localhost:"+promPort, "localhost:"+port)

	deny, err := rollout.CompileEgress(rollout.Egress{Deny: []string{"127.0.0.0/8", "::1"}})
	if err != nil {
		t.Fatal(err)
	}
	if ps := deny.Check(doc); len(ps) != 0 {
		t.Fatalf("the rules refuse the spec as written (%v); the test needs a name they admit", ps)
	}
	g := New(Options{Egress: deny})
	t.Cleanup(func() { g.Close() })
	for _, v := range g.Check(t.Context(), doc, rollout.CanaryAt(40)) {
		if v.Result != rollout.Error || !strings.Contains(v.Reason, "egress refused") || !strings.Contains(v.Reason, "egress.deny") {
			t.Errorf("gate %s: %s %q, want an error verdict saying egress refused the resolved address", v.Gate, v.Result, v.Reason)
		}
	}

	open, err := rollout.CompileEgress(rollout.Egress{})
	if err != nil {
		t.Fatal(err)
	}
	g2 := New(Options{Egress: open})
	t.Cleanup(func() { g2.Close() })
	if v := g2.Check(t.Context(), doc, rollout.CanaryAt(0)); len(v) != 1 || v[0].Result != rollout.Pass {
		t.Errorf("the probe under rules that deny nothing: %+v, want a pass", v)
	}
}
