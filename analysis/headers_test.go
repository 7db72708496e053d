package analysis

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/greeter"
)

// TestProbeSendsHeaders checks grpcurl's header rules: -H goes with the call and with the
// reflection requests, -rpc-header with the call only, and -user-agent prefixes the agent.
func TestProbeSendsHeaders(t *testing.T) {
	srv, addr := serveGreeter(t, greeter.Options{Instance: "v1", Reflection: true}, "127.0.0.1:0")
	line := `-H 'x-tenant: acme' -rpc-header 'x-call-only: 1' -user-agent probe-test -plaintext ` + addr + ` helloworld.Greeter/SayHello`
	if v := newProbe(t).Check(t.Context(), probeSpec(t, line, "Hello", 1, 1, 2*time.Second)); v.Result != rollout.Pass {
		t.Fatalf("%s: %s", v.Result, v.Reason)
	}
	call := srv.Metadata("/" + greeter.FullMethod)
	refl := srv.Metadata("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
	got := map[string][]string{
		"call x-tenant":        call.Get("x-tenant"),
		"call x-call-only":     call.Get("x-call-only"),
		"reflection x-tenant":  refl.Get("x-tenant"),
		"reflection call-only": refl.Get("x-call-only"),
	}
	want := map[string][]string{
		"call x-tenant":        {"acme"},
		"call x-call-only":     {"1"},
		"reflection x-tenant":  {"acme"},
		"reflection call-only": nil,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("headers received (-want +got):\n%s", d)
	}
	if ua := call.Get("user-agent"); len(ua) != 1 || !strings.HasPrefix(ua[0], "probe-test canaryd-probe") {
		t.Errorf("user-agent %q", ua)
	}
}
