package analysis

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/greeter"
)

// TestProbePinnedToSubsets calls the canary and stable greeters straight, as a probe with
// canaryAddress and stableAddress does at any weight: the canary's calls decide, and a
// failing stable never counts against the canary.
func TestProbePinnedToSubsets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gRPC servers; skipped with -short")
	}
	tests := []struct {
		name           string
		canary, stable float64 // error rates
		want           rollout.Result
	}{
		{"a healthy canary beside a healthy stable passes", 0, 0, rollout.Pass},
		{"a healthy canary beside a failing stable passes", 0, 1, rollout.Pass},
		{"a failing canary beside a healthy stable fails", 1, 0, rollout.Fail},
		{"both failing is inconclusive", 1, 1, rollout.Inconclusive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, canary := serveGreeter(t, greeter.Options{Instance: "v2-pod", Reflection: true, ErrorRate: tt.canary, ErrorCode: codes.Unavailable}, "127.0.0.1:0")
			_, stable := serveGreeter(t, greeter.Options{Instance: "v1-pod", Reflection: true, ErrorRate: tt.stable, ErrorCode: codes.Internal}, "127.0.0.1:0")
			// The command's own address (the gateway) is never called: nothing listens there.
			spec := probeSpec(t, `-d '{"name":"Jack"}' -plaintext 127.0.0.1:1 helloworld.Greeter/SayHello`, "Hello, Jack!", 3, 1, 2*time.Second)
			spec.CanaryAddress, spec.StableAddress = canary, stable
			v := newProbe(t).Check(t.Context(), spec)
			if v.Result != tt.want {
				t.Fatalf("result %s (%s), want %s", v.Result, v.Reason, tt.want)
			}
			if len(v.Evidence) != 6 {
				t.Fatalf("%d calls in the evidence, want 3 to each subset: %+v", len(v.Evidence), v.Evidence)
			}
			for i, ev := range v.Evidence {
				wantAddr, wantBackend := canary, "v2-pod"
				if i >= 3 {
					wantAddr, wantBackend = stable, "v1-pod"
				}
				if ev.Code == "OK" && ev.Backend != wantBackend {
					t.Errorf("call %d answered by %q, want %q", i, ev.Backend, wantBackend)
				}
				if !strings.Contains(ev.Query, wantAddr) {
					t.Errorf("call %d: %q does not name %s", i, ev.Query, wantAddr)
				}
			}
		})
	}
}
