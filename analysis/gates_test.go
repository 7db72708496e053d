package analysis

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/greeter"
	"github.com/canarydio/canaryd/test/golden"
)

const specYAML = `apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata:
  name: grpc-helloworld-py
spec:
  virtualService: {namespace: default, name: grpc-vs}
  host: grpc-helloworld-py
  stable: v1
  canary: v2
  manifest: deploy/sample/rules.yaml
  steps: [0, 40, 100]
  schedule: "@every 30s"
  analysis:
    prometheus: {address: PROM}
    metrics:
      - template: grpc-success-rate
        min: 0.99
        window: 1m
        minRequests: 20
      - template: grpc-latency-p99
        max: 500ms
      - name: custom
        query: sum(rate(my_errors_total{version="{{ .Canary }}"}[{{ .Window }}]))
        max: 0.1
  probe:
    grpcurl: -d '{"name":"Jack"}' -plaintext ADDR helloworld.Greeter/SayHello
    expect: "Hello, Jack!"
    count: 3
    timeout: 2s
`

func parseSpec(t testing.TB, prom, addr string) *rollout.Document {
	t.Helper()
	text := strings.NewReplacer("PROM", prom, "ADDR", addr).Replace(specYAML)
	docs, err := rollout.Parse("rollout.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return docs[0]
}

// TestGatesCheck runs every gate of a parsed spec: the probe against a real greeter and
// the metrics against an address where no Prometheus listens, which must be errors.
func TestGatesCheck(t *testing.T) {
	_, addr := serveGreeter(t, greeter.Options{Instance: "v2-pod", Reflection: true}, "127.0.0.1:0")
	doc := parseSpec(t, "http://127.0.0.1:1", addr)
	g := New(Options{})
	t.Cleanup(func() { g.Close() })
	for _, canary := range []int{0, 40} {
		t.Run(rollout.CanaryAt(canary).String(), func(t *testing.T) {
			vs := g.Check(t.Context(), doc, rollout.CanaryAt(canary))
			var got []string
			for _, v := range vs {
				got = append(got, v.Gate+"="+string(v.Result))
			}
			want := []string{"probe=pass"}
			if canary > 0 {
				want = []string{"grpc-success-rate=error", "grpc-latency-p99=error", "custom=error", "probe=pass"}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("verdicts (-want +got):\n%s", d)
			}
			var names []string
			for _, v := range vs {
				names = append(names, v.Gate)
			}
			if d := cmp.Diff(doc.Spec.Gates(canary), names); d != "" {
				t.Errorf("gates differ from Spec.Gates (-want +got):\n%s", d)
			}
		})
	}
}

// TestRenderGolden keeps the PromQL of the built-in templates and of the example's custom
// query in testdata/queries.golden; run with -update to rewrite it.
func TestRenderGolden(t *testing.T) {
	doc := parseSpec(t, "http://prometheus:9090", "gw:8080")
	var b strings.Builder
	for i := range doc.Spec.Analysis.Metrics {
		m := &doc.Spec.Analysis.Metrics[i]
		q, err := Render(m, Vars(doc, m))
		if err != nil {
			t.Fatal(err)
		}
		stable, err := Render(m, asStable(Vars(doc, m)))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("# " + m.GateName() + "\n" + q + "\n# " + m.GateName() + " (stable)\n" + stable + "\n\n")
	}
	rr := &rollout.Metric{Template: rollout.TemplateRequestRate, Window: rollout.Duration{Duration: 90 * time.Second}}
	q, err := Render(rr, Vars(doc, rr))
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("# grpc-request-rate, window 90s\n" + q + "\n")
	golden.Check(t, filepath.Join("testdata", "queries.golden"), []byte(b.String()))
}

func TestVars(t *testing.T) {
	tests := []struct {
		host string
		want rollout.QueryVars
	}{
		{"grpc-helloworld-py", rollout.QueryVars{Namespace: "default", Host: "grpc-helloworld-py", Service: "grpc-helloworld-py"}},
		{"greeter.shop.svc.cluster.local", rollout.QueryVars{Namespace: "shop", Host: "greeter.shop.svc.cluster.local", Service: "greeter"}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			d := doc(tt.host, "")
			d.Metadata.Name = "r"
			m := &rollout.Metric{Window: rollout.Duration{Duration: 5 * time.Minute}}
			tt.want.Stable, tt.want.Canary, tt.want.Window, tt.want.Rollout = "v1", "v2", "5m", "r"
			if d := cmp.Diff(tt.want, Vars(d, m)); d != "" {
				t.Errorf("Vars (-want +got):\n%s", d)
			}
		})
	}
}

func TestRenderRejectsBadTemplates(t *testing.T) {
	for _, m := range []*rollout.Metric{
		{Template: "grpc-nonsense"},
		{Query: "{{ .Nope }}"},
		{Query: "{{ .Canary "},
	} {
		if q, err := Render(m, rollout.QueryVars{}); err == nil {
			t.Errorf("Render(%+v) = %q, want an error", m, q)
		}
	}
}

// FuzzDisplayCommand checks that the command shown in verdicts parses back to the same
// target and method, and never shows a header value.
func FuzzDisplayCommand(f *testing.F) {
	f.Add(`-d '{"name":"Jack"}' -plaintext -H 'authorization: Bearer tok' gw:8080 helloworld.Greeter/SayHello`)
	f.Add(`-insecure -authority "a b" -rpc-header 'x: y' -protoset /p.set h:1 p.S.M`)
	f.Add(`-cacert ca.pem -cert c.pem -key k.pem -max-time 0.5 -connect-timeout 3 -user-agent 'me 1' h:1 p.S/M`)
	f.Add(`-import-path ./protos -proto hello.proto -plaintext h:1 p.S/M`)
	f.Fuzz(func(t *testing.T, line string) {
		cmd, err := rollout.ParseGRPCurl(line)
		if err != nil {
			return
		}
		shown := displayCommand(cmd)
		back, err := rollout.ParseGRPCurl(shown)
		if err != nil {
			t.Fatalf("displayCommand(%q) = %q does not parse: %v", line, shown, err)
		}
		cmd.Headers, cmd.RPCHeaders = nil, nil
		headers := append(back.Headers, back.RPCHeaders...)
		back.Headers, back.RPCHeaders = nil, nil
		if d := cmp.Diff(cmd, back); d != "" {
			t.Fatalf("round trip of %q through %q changed the call (-want +got):\n%s", line, shown, d)
		}
		for _, h := range headers {
			if _, v, _ := strings.Cut(h, ":"); strings.TrimSpace(v) != "<redacted>" {
				t.Fatalf("header value shown: %q", h)
			}
		}
	})
}
