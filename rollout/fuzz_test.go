package rollout

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../deploy/examples/rollout.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(base))
	f.Add([]byte(grpcRouteSpec))
	f.Add([]byte(base + "---\n" + base))
	f.Add([]byte("spec: {steps: [0, 140, 100], stpes: 1}\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	// Large inputs: the parser and validation must stay linear in them.
	f.Add([]byte(strings.Replace(base, "0, 40, 100", numbers(100_000), 1)))
	f.Add([]byte(base + "  host: " + strings.Repeat("x", 500_000) + "\n"))
	f.Add([]byte(base + "  probe: " + strings.Repeat("[", 20_000) + "\n"))
	f.Add([]byte(strings.Repeat(base+"---\n", 2*MaxDocuments)))
	f.Add([]byte(base + "  analysis:\n    metrics:\n" + strings.Repeat("      - {template: nope, min: x}\n", 2*MaxListItems)))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Parse("f.yaml", data)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %v", err)
			}
			for _, p := range ps {
				if p.Line < 1 || p.Col < 0 || !strings.HasPrefix(p.String(), "f.yaml:") {
					t.Fatalf("problem without a position: %q", p.String())
				}
			}
			return
		}
		if len(docs) == 0 {
			t.Fatal("no error and no documents")
		}
		for _, d := range docs {
			s := d.Spec
			if d.Name() == "" || s.Stable == s.Canary || len(s.Steps) == 0 || s.Steps[len(s.Steps)-1] != 100 {
				t.Fatalf("an invalid spec passed validation: %+v", d)
			}
			for i := 1; i < len(s.Steps); i++ {
				if s.Steps[i] <= s.Steps[i-1] || s.Steps[i-1] < 0 {
					t.Fatalf("steps %v passed validation", s.Steps)
				}
			}
			if s.Probe != nil && (s.Probe.Command == nil || s.Probe.Command.Address == "" || s.Probe.Command.Method == "") {
				t.Fatalf("a probe passed validation without a parsed command: %+v", s.Probe)
			}
			_ = d.Schedule() // panics on a schedule that should not have validated
		}
	})
}

func FuzzParseGRPCurl(f *testing.F) {
	f.Add(`-d '{"name":"Jack"}' -plaintext 127.0.0.1:8080 helloworld.Greeter/SayHello`)
	f.Add(`-H "a: \"b\"" -max-time=2 gw:1 p.S.M`)
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseGRPCurl(line)
		if err != nil {
			return
		}
		if c.Address == "" || !strings.Contains(c.Method, "/") || (c.Plaintext && c.Insecure) {
			t.Fatalf("accepted %q as %+v", line, c)
		}
	})
}
