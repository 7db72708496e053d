package gitops

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/golden"
)

// seedRef is the route of the sample system's VirtualService.
var seedRef = VSRef{Namespace: "default", Name: "grpc-vs", Host: "grpc-helloworld-py", Stable: "v1", Canary: "v2"}

func TestSetWeightsGolden(t *testing.T) {
	named := seedRef
	named.Route = "main"
	staging := seedRef
	staging.Namespace = "staging"
	grpc := VSRef{Kind: rollout.KindGRPCRoute, Namespace: "default", Name: "grpc-route",
		Stable: "grpc-helloworld-py-v1", Canary: "grpc-helloworld-py-v2"}
	grpcPort := grpc
	grpcPort.Port = 9090
	grpcRule := grpc
	grpcRule.Route = "1"
	grpcFirst := grpc
	grpcFirst.Route = "0"
	web := VSRef{Kind: rollout.KindHTTPRoute, Namespace: "shop", Name: "web", Route: "split", Stable: "web-v1", Canary: "web-v2"}
	webBeta := web
	webBeta.Route = "beta-testers"
	webPort := web
	webPort.Port = 80
	tests := []struct {
		name string
		file string
		ref  VSRef
		w    rollout.Weights
		want error // nil: the output must equal testdata/edit/<name>.golden
	}{
		{"rules", "rules.yaml", seedRef, rollout.CanaryAt(40), nil},
		{"sample-rules", "sample-rules.yaml", seedRef, rollout.CanaryAt(60), nil},
		{"flow", "flow.yaml", seedRef, rollout.CanaryAt(40), nil},
		{"comments", "comments.yaml", seedRef, rollout.CanaryAt(5), nil},
		{"crlf", "crlf.yaml", seedRef, rollout.CanaryAt(100), nil},
		{"multi-default", "multi.yaml", seedRef, rollout.CanaryAt(40), nil},
		{"multi-staging", "multi.yaml", staging, rollout.CanaryAt(100), nil},
		{"third", "third.yaml", seedRef, rollout.CanaryAt(40), nil},
		{"missing", "missing.yaml", seedRef, rollout.CanaryAt(40), nil},
		{"missing-flow", "missing-flow.yaml", seedRef, rollout.CanaryAt(40), nil},
		{"named", "named.yaml", named, rollout.CanaryAt(40), nil},
		{"unnamed-ambiguous", "named.yaml", seedRef, rollout.CanaryAt(40), ErrAmbiguous},
		{"no-such-route", "rules.yaml", VSRef{Namespace: "default", Name: "grpc-vs", Route: "nope", Stable: "v1", Canary: "v2"}, rollout.CanaryAt(40), ErrNoRoute},
		{"no-vs", "rules.yaml", VSRef{Namespace: "default", Name: "other", Stable: "v1", Canary: "v2"}, rollout.CanaryAt(40), ErrNotFound},
		{"no-vs-namespace", "multi.yaml", VSRef{Namespace: "prod", Name: "grpc-vs", Stable: "v1", Canary: "v2"}, rollout.CanaryAt(40), ErrNotFound},
		{"no-subsets", "nosubset.yaml", seedRef, rollout.CanaryAt(40), ErrNoRoute},
		{"named-no-subset", "nosubset.yaml", VSRef{Namespace: "default", Name: "grpc-vs", Route: "", Stable: "v1", Canary: "v7"}, rollout.CanaryAt(40), ErrNoRoute},
		{"third-weighted", "third-weighted.yaml", seedRef, rollout.CanaryAt(40), ErrWeights},
		{"not-100", "rules.yaml", seedRef, rollout.Weights{Stable: 50, Canary: 40}, ErrWeights},
		{"broken", "broken.yaml", seedRef, rollout.CanaryAt(40), ErrParse},
		{"anchored", "anchors.yaml", seedRef, rollout.CanaryAt(40), ErrUnsupported},
		{"grpcroute", "grpcroute.yaml", grpc, rollout.CanaryAt(40), nil},
		{"grpcroute-flow", "grpcroute-flow.yaml", grpcPort, rollout.CanaryAt(40), nil},
		{"grpcroute-flow-rule", "grpcroute-flow.yaml", grpcRule, rollout.CanaryAt(100), nil},
		{"grpcroute-flow-insert", "grpcroute-flow.yaml", grpcFirst, rollout.CanaryAt(40), nil},
		{"grpcroute-flow-ambiguous", "grpcroute-flow.yaml", grpc, rollout.CanaryAt(40), ErrAmbiguous},
		{"httproute", "httproute.yaml", web, rollout.CanaryAt(40), nil},
		{"httproute-beta", "httproute.yaml", webBeta, rollout.CanaryAt(0), nil},
		{"httproute-port", "httproute.yaml", webPort, rollout.CanaryAt(40), ErrSubset},
		{"httproute-unnamed-ambiguous", "httproute.yaml", VSRef{Kind: rollout.KindHTTPRoute, Namespace: "shop", Name: "web", Stable: "web-v1", Canary: "web-v2"}, rollout.CanaryAt(40), ErrAmbiguous},
		{"grpcroute-no-rule", "grpcroute.yaml", VSRef{Kind: rollout.KindGRPCRoute, Namespace: "default", Name: "grpc-route", Route: "7", Stable: "grpc-helloworld-py-v1", Canary: "grpc-helloworld-py-v2"}, rollout.CanaryAt(40), ErrNoRoute},
		{"grpcroute-rule-lacks-canary", "grpcroute.yaml", VSRef{Kind: rollout.KindGRPCRoute, Namespace: "default", Name: "grpc-route", Route: "0", Stable: "grpc-helloworld-py-v1", Canary: "grpc-helloworld-py-v2"}, rollout.CanaryAt(40), ErrSubset},
		{"grpcroute-not-a-vs", "grpcroute.yaml", VSRef{Namespace: "default", Name: "grpc-route", Stable: "v1", Canary: "v2"}, rollout.CanaryAt(40), ErrNotFound},
		{"fqdn", "fqdn.yaml", seedRef, rollout.CanaryAt(40), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", "edit", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			out, err := SetWeights(in, tt.ref, tt.w)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || out != nil {
					t.Fatalf("SetWeights = %d bytes, %v; want no bytes and %v", len(out), err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("SetWeights: %v", err)
			}
			golden.Check(t, filepath.Join("testdata", "edit", tt.name+".golden"), out)
			if !onlyWeightsDiffer(in, out) {
				t.Errorf("more than weight values changed:\n%s", cmp.Diff(string(in), string(out)))
			}
			got, err := ReadWeights(out, tt.ref)
			if err != nil || got != tt.w {
				t.Errorf("ReadWeights(output) = %v, %v; want %v", got, err, tt.w)
			}
			again, err := SetWeights(out, tt.ref, tt.w)
			if err != nil || !bytes.Equal(again, out) {
				t.Errorf("SetWeights is not idempotent: %v\n%s", err, cmp.Diff(string(out), string(again)))
			}
		})
	}
}

func TestReadWeights(t *testing.T) {
	tests := []struct {
		file string
		ref  VSRef
		want rollout.Weights
		err  error
	}{
		{"rules.yaml", seedRef, rollout.CanaryAt(0), nil},
		{"comments.yaml", seedRef, rollout.CanaryAt(0), nil},
		{"multi.yaml", VSRef{Namespace: "staging", Name: "grpc-vs", Stable: "v1", Canary: "v2"}, rollout.CanaryAt(50), nil},
		{"missing.yaml", seedRef, rollout.CanaryAt(0), nil},
		{"third-weighted.yaml", seedRef, rollout.Weights{}, ErrWeights},
		{"broken.yaml", seedRef, rollout.Weights{}, ErrParse},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", "edit", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadWeights(in, tt.ref)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ReadWeights error = %v, want %v", err, tt.err)
			}
			if tt.err == nil && got != tt.want {
				t.Errorf("ReadWeights = %v, want %v", got, tt.want)
			}
		})
	}
}

var (
	weightValue = regexp.MustCompile(`weight:(\s*)(["']?)[0-9]+`)
	insertedRe  = regexp.MustCompile(`^(weight: #, |[ ]*weight: #(\r\n|\n|\r|$))`)
)

// onlyWeightsDiffer reports whether out is in with only weight values changed and weight
// keys inserted (as whole lines, or as "weight: N, " in flow mappings).
func onlyWeightsDiffer(in, out []byte) bool {
	a := weightValue.ReplaceAllString(string(in), "weight:$1$2#")
	b := weightValue.ReplaceAllString(string(out), "weight:$1$2#")
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if i < len(a) && j < len(b) && a[i] == b[j] {
			i, j = i+1, j+1
			continue
		}
		if m := insertedRe.FindString(b[j:]); strings.HasPrefix(m, "weight: #, ") {
			j += len(m)
			continue
		}
		// An inserted line: back up to the start of b's line (a matched it so far).
		ls := strings.LastIndexAny(b[:j], "\r\n") + 1
		m := insertedRe.FindString(b[ls:])
		if m == "" || strings.HasPrefix(m, "weight: #, ") || j-ls > i {
			return false
		}
		i, j = i-(j-ls), ls
		j += len(m)
	}
	return true
}

// fuzzRefs are the routes FuzzSetWeights edits: a VirtualService's, a GRPCRoute's and an
// HTTPRoute's.
var fuzzRefs = []VSRef{seedRef,
	{Kind: rollout.KindGRPCRoute, Namespace: "default", Name: "grpc-route", Stable: "grpc-helloworld-py-v1", Canary: "grpc-helloworld-py-v2"},
	{Kind: rollout.KindHTTPRoute, Namespace: "shop", Name: "web", Stable: "web-v1", Canary: "web-v2"},
}

// FuzzSetWeights checks that any input either fails cleanly or yields a manifest that
// parses, holds the weights asked for, and differs only in weight values.
func FuzzSetWeights(f *testing.F) {
	for _, data := range editSeeds(f) {
		for kind := range fuzzRefs {
			f.Add(data, uint8(40), "", uint8(kind))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, canary uint8, route string, kind uint8) {
		ref := fuzzRefs[int(kind)%len(fuzzRefs)]
		ref.Route = route
		w := rollout.CanaryAt(int(canary) % 101)
		out, err := SetWeights(in, ref, w)
		if err != nil {
			if out != nil {
				t.Fatalf("error %v with output", err)
			}
			return
		}
		if _, err := parseDocs(out); err != nil {
			t.Fatalf("output does not parse: %v", err)
		}
		if got, err := ReadWeights(out, ref); err != nil || got != w {
			t.Fatalf("ReadWeights(output) = %v, %v; want %v", got, err, w)
		}
		if !onlyWeightsDiffer(in, out) {
			t.Fatalf("more than weights changed:\n%q\n%q", in, out)
		}
	})
}

// editSeeds returns the manifests of testdata/edit, and one of them all together.
func editSeeds(f *testing.F) [][]byte {
	entries, err := os.ReadDir(filepath.Join("testdata", "edit"))
	if err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			data, err := os.ReadFile(filepath.Join("testdata", "edit", e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, data)
		}
	}
	return append(seeds, bytes.Join(seeds, []byte("\n---\n")))
}

// shortcutEdits reads and edits, in m, the route of each of refs that m holds, as a batch
// does, to w for the first and the reverse of w for the next, and so on.
func shortcutEdits(t *testing.T, m *manifest, refs []VSRef, w rollout.Weights) []routeEdit {
	t.Helper()
	var es []routeEdit
	for i, ref := range refs {
		loc, cur, err := m.read(ref)
		if err != nil {
			continue
		}
		want := w
		if i%2 == 1 {
			want = rollout.Weights{Stable: w.Canary, Canary: w.Stable}
		}
		e, err := m.edit(ref, loc, cur, want)
		if err != nil || len(e.edits) == 0 {
			continue
		}
		es = append(es, e)
	}
	return es
}

// FuzzVerifyShortcut holds the check a batch passes without parsing its edits again
// (onlySwapsDigits) to the full check: whenever it lets edits pass, the full check, which
// parses the edited text, reads each route back and compares every decoded value, must
// pass them too; and the parse carried over to the edited text (advanced) must be what
// parsing that text gives, node for node, positions and comments included.
func FuzzVerifyShortcut(f *testing.F) {
	for _, data := range editSeeds(f) {
		f.Add(data, uint8(40), "", uint8(0))
		f.Add(data, uint8(100), "", uint8(7))
	}
	// A weight whose destination a TCP route repeats by alias: the shortcut must not
	// pass a change of both.
	f.Add([]byte(`kind: VirtualService
metadata: {name: grpc-vs, namespace: default}
spec:
  http:
  - route:
    - &stable {destination: {host: grpc-helloworld-py, subset: v1}, weight: 100}
    - destination: {host: grpc-helloworld-py, subset: v2}
      weight: 0
  tcp:
  - route: [*stable]
`), uint8(40), "", uint8(1))
	// Both weights on one line, with nodes after each: the carried parse moves them.
	f.Add([]byte(`kind: GRPCRoute
metadata: {name: grpc-route, namespace: default}
spec:
  rules:
  - backendRefs: [{name: grpc-helloworld-py-v1, weight: 100, port: 50051}, {name: grpc-helloworld-py-v2, weight: 0, port: 50051}] # one line
`), uint8(40), "", uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, canary uint8, route string, mask uint8) {
		m, err := parseManifest(in)
		if err != nil {
			return
		}
		var refs []VSRef
		for i, ref := range fuzzRefs {
			if mask == 0 || mask&(1<<i) != 0 {
				ref.Route = route
				refs = append(refs, ref)
			}
		}
		es := shortcutEdits(t, m, refs, rollout.CanaryAt(int(canary)%101))
		if len(es) == 0 || !m.onlySwapsDigits(es) {
			return
		}
		if err := m.verifyByParse(es); err != nil {
			t.Fatalf("the shortcut passed edits the full check refuses: %v\n%q", err, m.apply(es))
		}
		next := m.advanced(es)
		if !bytes.Equal(next.data, m.apply(es)) {
			t.Fatalf("advanced holds %q, the edits make %q", next.data, m.apply(es))
		}
		parsed, err := parseDocs(next.data)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(parsed, next.docs); diff != "" {
			t.Fatalf("advanced is not the parse of its text (-parsed +advanced):\n%s", diff)
		}
		again, err := parseManifest(in) // m itself is left as parsed
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(again.docs, m.docs); diff != "" {
			t.Fatalf("advanced changed the manifest it came from:\n%s", diff)
		}
	})
}

// TestVerifyShortcutTakes checks which batches take the shortcut: edits of weights written
// in place do, in every quoting and style; anything the shortcut cannot vouch for is
// parsed again, and the full check still refuses what it refused.
func TestVerifyShortcutTakes(t *testing.T) {
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join("testdata", "edit", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	base := read("multi.yaml")
	staging := []VSRef{{Namespace: "staging", Name: "grpc-vs", Host: "grpc-helloworld-py", Stable: "v1", Canary: "v2"}}
	spec := func(lines string) string { // lines at the top of the staging route's spec
		return strings.Replace(base, "spec:\n", "spec:\n  "+lines+"\n", 1)
	}
	for _, tc := range []struct {
		name, in string
		refs     []VSRef
		short    bool
	}{
		{"block", read("comments.yaml"), []VSRef{seedRef}, true},
		{"flow", read("flow.yaml"), []VSRef{seedRef}, true},
		{"crlf", read("crlf.yaml"), []VSRef{seedRef}, true},
		{"gateway api", read("grpcroute.yaml"), fuzzRefs[1:2], true},
		{"quoted", strings.Replace(base, "weight: 100", `weight: "100"`, 1), []VSRef{{Namespace: "default", Name: "other-vs", Host: "other", Stable: "v1", Canary: "v2"}}, true},
		{"two documents", base, append([]VSRef{{Namespace: "default", Name: "other-vs", Host: "other", Stable: "v1", Canary: "v2"}}, staging...), true},
		{"weight inserted", read("missing.yaml"), []VSRef{seedRef}, false},
		{"anchored elsewhere", spec("extra: &a {x: 1}\n  again: *a"), staging, false},
		{"merge key", spec("extra: {<<: {x: 1}, y: 2}"), staging, false},
		{"tagged", spec("note: !!str 1"), staging, false},
		{"repeated key", spec("note: a\n  note: b"), staging, false},
		{"complex key", spec("? [a]\n  : b"), staging, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseManifest([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			es := shortcutEdits(t, m, tc.refs, rollout.CanaryAt(40))
			if len(es) != len(tc.refs) {
				t.Fatalf("%d edits of %d routes", len(es), len(tc.refs))
			}
			if got := m.onlySwapsDigits(es); got != tc.short {
				t.Fatalf("onlySwapsDigits = %v, want %v", got, tc.short)
			}
			full := m.verifyByParse(es)
			if tc.short && full != nil {
				t.Fatalf("shortcut taken, yet the full check refuses: %v", full)
			}
			if err := m.verifyAll(es); (err == nil) != (full == nil) {
				t.Fatalf("verifyAll = %v, the full check %v", err, full)
			}
		})
	}
}
