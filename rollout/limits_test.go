package rollout

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func numbers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, i%101)
	}
	return b.String()
}

// TestLimits: every bound gives one clear problem where the oversized part starts.
func TestLimits(t *testing.T) {
	probe := "  probe:\n    grpcurl: -plaintext gw:8080 p.S/M\n    count: %d\n"
	metric := "  analysis:\n    metrics:\n      - name: q\n        max: 1\n        query: %q\n"
	tests := []struct {
		name string
		data string
		want string
	}{
		{"200,000 steps", strings.Replace(base, "0, 40, 100", numbers(200_000), 1),
			"f.yaml:11:10: spec.steps: holds 200000 items; at most 101 steps"},
		{"102 steps", strings.Replace(base, "0, 40, 100", numbers(102), 1),
			"f.yaml:11:10: spec.steps: holds 102 items; at most 101 steps"},
		{"file too large", base + strings.Repeat("#", MaxSpecBytes) + "\n",
			"f.yaml:1:1: the file is 1048845 bytes; a spec file may hold at most 1048576"},
		{"too many documents", strings.Repeat(base+"---\n", MaxDocuments+1),
			"f.yaml:1:1: more than 100 YAML documents"},
		{"too many probe calls", base + fmt.Sprintf(probe, MaxProbeCount+1),
			"f.yaml:15:12: spec.probe.count: must be at most 100 calls per check, not 101"},
		{"query too long", base + fmt.Sprintf(metric, "sum(up)"+strings.Repeat(" ", MaxQueryBytes)),
			"f.yaml:17:16: spec.analysis.metrics[0].query: is 8199 bytes; a query may be at most 8192"},
		{"alias bomb", base + "  host: &a [*b, *b]\n",
			""}, // an undefined alias: a syntax error, still positioned
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.data))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v, want Problems", err)
			}
			if tt.want == "" {
				return
			}
			for _, p := range ps {
				if strings.HasPrefix(p.String(), tt.want) {
					return
				}
			}
			t.Errorf("problems:\n%v\nwant one starting %q", err, tt.want)
		})
	}
}

// TestAliasExpansionIsBounded: a billion-laughs document stops at MaxNodes with one problem.
func TestAliasExpansionIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	doc := strings.Replace(base, "  schedule:", "  x: *a8\n  schedule:", 1)
	doc = strings.Replace(doc, "spec:\n", "spec:\n  "+strings.ReplaceAll(strings.TrimSuffix(b.String(), "\n"), "\n", "\n  ")+"\n", 1)
	type anything struct {
		Spec struct {
			X [][][][][][][][][]string `yaml:"x"`
		} `yaml:"spec"`
	}
	var v anything
	err := DecodeYAML("f.yaml", []byte(doc), &v)
	if err == nil || !strings.Contains(err.Error(), "more than 100000 YAML nodes") {
		t.Fatalf("err = %v, want the node limit", err)
	}
}

// TestFlowSyntaxErrorLine: a YAML error inside a flow collection names the line where the
// collection opens, not the one before it.
func TestFlowSyntaxErrorLine(t *testing.T) {
	tests := []struct{ name, edit, want string }{
		{"flow mapping", "  virtualService: {namespace: default, name: grpc-vs\n",
			"f.yaml:6:1: YAML: did not find expected ',' or '}'"},
		{"flow sequence", "  steps: [0, 40, 100\n", "f.yaml:11:1: YAML: did not find expected ',' or ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := strings.SplitAfter(base, "\n")
			for i, l := range lines {
				if strings.HasPrefix(tt.edit, strings.SplitN(l, ":", 2)[0]+":") {
					lines[i] = tt.edit
				}
			}
			_, err := Parse("f.yaml", []byte(strings.Join(lines, "")))
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

// TestManyProblemsLinear: a document with a problem in every item of a long list still
// reports each one; the index that suppresses repeats keeps this linear.
func TestManyProblemsLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString(base + "  analysis:\n    metrics:\n")
	for range MaxListItems {
		b.WriteString("      - {template: nope, min: x}\n")
	}
	_, err := Parse("f.yaml", []byte(b.String()))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) < MaxListItems {
		t.Fatalf("got %d problems, want at least %d", len(ps), MaxListItems)
	}
}
