package istio

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

// sampleSpec is grpc-vs's spec from deploy/sample/rules.yaml, as JSON.
const sampleSpec = `{"hosts":["*"],"gateways":["grpc-gateway"],"http":[{"match":[{"port":8080}],"route":[
{"destination":{"host":"grpc-helloworld-py","port":{"number":50051},"subset":"v1"},"weight":100},
{"destination":{"host":"grpc-helloworld-py","port":{"number":50051},"subset":"v2"},"weight":0}]}]}`

func decodeSpec(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func sampleRollout(route string) rollout.Target {
	s := &rollout.Spec{VirtualService: rollout.ObjectRef{Namespace: "default", Name: "grpc-vs"},
		Route: rollout.RouteRef{HTTP: route}, Host: "grpc-helloworld-py", Stable: "v1", Canary: "v2"}
	return s.Target()
}

// TestFindRoute covers the route-finding rule gitops shares: by name, or the
// only http route holding both subsets of the host.
func TestFindRoute(t *testing.T) {
	dest := func(host, subset string, w int) string {
		return `{"destination":{"host":"` + host + `","subset":"` + subset + `"},"weight":` + json.Number(itoa(w)).String() + `}`
	}
	route := func(name string, dests ...string) string {
		return `{"name":"` + name + `","route":[` + strings.Join(dests, ",") + `]}`
	}
	both := route("", dest("grpc-helloworld-py", "v1", 100), dest("grpc-helloworld-py", "v2", 0))
	tests := []struct {
		name    string
		http    []string
		route   string
		want    route_
		wantErr error
	}{
		{name: "only route", http: []string{both}, want: route_{HTTP: 0, Stable: 0, Canary: 1}},
		{name: "the one holding both subsets", http: []string{
			route("a", dest("other", "v1", 100)),
			route("b", dest("grpc-helloworld-py", "v2", 0), dest("grpc-helloworld-py", "v1", 100))},
			want: route_{HTTP: 1, Name: "b", Stable: 1, Canary: 0}},
		{name: "by name", route: "b", http: []string{both, route("b", dest("grpc-helloworld-py", "v1", 50), dest("grpc-helloworld-py", "v2", 50))},
			want: route_{HTTP: 1, Name: "b", Stable: 0, Canary: 1}},
		{name: "other destinations counted", http: []string{route("", dest("grpc-helloworld-py", "v1", 80),
			dest("grpc-helloworld-py", "v2", 0), dest("legacy", "v0", 20))},
			want: route_{HTTP: 0, Stable: 0, Canary: 1, Others: 20}},
		{name: "ambiguous", http: []string{both, both}, wantErr: ErrAmbiguousRoute},
		{name: "none", http: []string{route("", dest("grpc-helloworld-py", "v1", 100))}, wantErr: ErrRouteNotFound},
		{name: "fqdn hosts are the short host in the object's namespace", http: []string{route("", dest("grpc-helloworld-py.default.svc.cluster.local", "v1", 100),
			dest("grpc-helloworld-py.default", "v2", 0))}, want: route_{HTTP: 0, Stable: 0, Canary: 1}},
		{name: "a host of another namespace is another host", http: []string{route("", dest("grpc-helloworld-py.prod.svc.cluster.local", "v1", 100),
			dest("grpc-helloworld-py", "v2", 0))}, wantErr: ErrRouteNotFound},
		{name: "name missing", route: "c", http: []string{both}, wantErr: ErrRouteNotFound},
		{name: "named route lacks a subset", route: "a", http: []string{route("a", dest("grpc-helloworld-py", "v1", 100))},
			wantErr: ErrRouteNotFound},
		{name: "name twice", route: "a", http: []string{route("a", dest("grpc-helloworld-py", "v1", 100)), route("a")},
			wantErr: ErrAmbiguousRoute},
		{name: "subset twice", http: []string{route("", dest("grpc-helloworld-py", "v1", 50),
			dest("grpc-helloworld-py", "v1", 50), dest("grpc-helloworld-py", "v2", 0))}, wantErr: ErrAmbiguousRoute},
		{name: "no http", wantErr: ErrRouteNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := decodeSpec(t, `{"http":[`+strings.Join(tc.http, ",")+`]}`)
			got, err := findRoute(spec, "default", sampleRollout(tc.route))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("findRoute = %+v, %v; want error %v", got, err, tc.wantErr)
			}
			if d := cmp.Diff(tc.want, got); err == nil && d != "" {
				t.Errorf("route (-want +got):\n%s", d)
			}
		})
	}
}

// route_ lets the table name the route type, which a local func shadows.
type route_ = route

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestSetWeightsAt checks the edit refuses invalid sums and changes only the
// two weights.
func TestSetWeightsAt(t *testing.T) {
	spec := decodeSpec(t, sampleSpec)
	orig := decodeSpec(t, sampleSpec)
	r, err := findRoute(spec, "default", sampleRollout(""))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []rollout.Weights{{Stable: 70, Canary: 40}, {Stable: -10, Canary: 110}} {
		if err := setWeightsAt(spec, r, w); !errors.Is(err, ErrBadWeights) {
			t.Errorf("setWeightsAt %s = %v, want ErrBadWeights", w, err)
		}
		if !reflect.DeepEqual(spec, orig) {
			t.Fatalf("a refused edit changed the spec")
		}
	}
	if err := setWeightsAt(spec, r, rollout.CanaryAt(40)); err != nil {
		t.Fatal(err)
	}
	if got, err := weightsAt(spec, r); err != nil || got != rollout.CanaryAt(40) {
		t.Fatalf("weightsAt = %s, %v; want 60/40", got, err)
	}
	want := decodeSpec(t, strings.Replace(strings.Replace(sampleSpec, `"weight":100`, `"weight":60`, 1), `"weight":0`, `"weight":40`, 1))
	if d := cmp.Diff(normalize(t, want), normalize(t, spec)); d != "" {
		t.Errorf("spec after the edit (-want +got):\n%s", d)
	}
}

// normalize round-trips through JSON so int64 and float64 weights compare.
func normalize(t testing.TB, m map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return decodeSpec(t, string(b))
}

// FuzzRoute: on any VirtualService spec, finding the route never panics; when
// a route is found, setting valid weights reads back exactly and changes no
// other byte of the spec.
func FuzzRoute(f *testing.F) {
	f.Add(sampleSpec, "", 40)
	f.Add(`{"http":[{"name":"a","route":[{"destination":{"host":"grpc-helloworld-py","subset":"v2"}},{"destination":{"host":"grpc-helloworld-py","subset":"v1"},"weight":1.5}]}]}`, "a", 100)
	f.Add(`{"http":[{"route":[{"destination":{"host":"grpc-helloworld-py","subset":"v1"},"weight":"x"},{"destination":{"host":"grpc-helloworld-py","subset":"v2"}}]},7]}`, "", 0)
	f.Add(`{"http":{"route":1}}`, "x", 50)
	f.Fuzz(func(t *testing.T, specJSON, name string, canary int) {
		var spec map[string]any
		if json.Unmarshal([]byte(specJSON), &spec) != nil {
			return
		}
		s := sampleRollout(name)
		r, err := findRoute(spec, "default", s)
		if err != nil {
			return
		}
		before, err := weightsAt(spec, r)
		if err != nil {
			return
		}
		origJSON, _ := json.Marshal(spec)
		w := rollout.CanaryAt(((canary % 101) + 101) % 101)
		if err := setWeightsAt(spec, r, w); err != nil {
			if !errors.Is(err, ErrBadWeights) || r.Others == 0 {
				t.Fatalf("setWeightsAt %s: %v", w, err)
			}
			if got, _ := json.Marshal(spec); string(got) != string(origJSON) {
				t.Fatal("a refused edit changed the spec")
			}
			return
		}
		if got, err := weightsAt(spec, r); err != nil || got != w {
			t.Fatalf("read back %s, %v; want %s", got, err, w)
		}
		if err := setWeightsAt(spec, r, before); err != nil && before.Valid() {
			t.Fatalf("restore %s: %v", before, err)
		}
		if before.Valid() {
			var a, b map[string]any
			_ = json.Unmarshal(origJSON, &a)
			got, _ := json.Marshal(spec)
			_ = json.Unmarshal(got, &b)
			if !reflectEqualLoose(a, b) {
				t.Fatalf("setting and restoring the weights changed the spec:\n%s\n%s", origJSON, got)
			}
		}
	})
}

// reflectEqualLoose compares decoded JSON, treating a missing weight and a
// weight of 0 alike (restoring writes 0 where the field was absent).
func reflectEqualLoose(a, b any) bool {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return false
		}
		for k := range merge(av, bv) {
			x, y := av[k], bv[k]
			if k == "weight" && isZero(x) && isZero(y) {
				continue
			}
			if !reflectEqualLoose(x, y) {
				return false
			}
		}
		return true
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !reflectEqualLoose(av[i], bv[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func merge(a, b map[string]any) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

func isZero(v any) bool { return v == nil || v == float64(0) }
