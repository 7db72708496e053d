package rollout

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFQDN(t *testing.T) {
	for _, h := range []string{"grpc-helloworld-py", "grpc-helloworld-py.default", "grpc-helloworld-py.default.svc",
		"grpc-helloworld-py.default.svc.cluster.local", "grpc-helloworld-py.default.svc.cluster.local."} {
		if got := FQDN(h, "default"); got != "grpc-helloworld-py.default.svc.cluster.local" {
			t.Errorf("FQDN(%q, default) = %q", h, got)
		}
	}
	if SameHost("grpc-helloworld-py", "grpc-helloworld-py.staging.svc.cluster.local", "default") {
		t.Error("a short name resolves in the object's namespace, not in any")
	}
	if !SameHost("grpc-helloworld-py", "grpc-helloworld-py.staging", "staging") {
		t.Error("a.ns and a are one host in ns")
	}
	if got := FQDN("*.example.com", "default"); got != "*.example.com" {
		t.Errorf("wildcard = %q", got)
	}
}

func vsTarget(route string) Target {
	return Target{Kind: KindVirtualService, Namespace: "default", Name: "grpc-vs", Route: route,
		Host: "grpc-helloworld-py", Stable: "v1", Canary: "v2"}
}

func gwTarget(rule string, port int) Target {
	return Target{Kind: KindGRPCRoute, Namespace: "default", Name: "grpc-route", Route: rule,
		Stable: "svc-v1", Canary: "svc-v2", Port: port}
}

func dest(host, subset string, w int) Backend { return Backend{Host: host, Subset: subset, Weight: w} }
func ref(name string, port, w int) Backend {
	return Backend{Host: name, Port: port, Service: true, Weight: w, Line: 9, Col: 7}
}

func TestPick(t *testing.T) {
	two := []Backend{dest("grpc-helloworld-py", "v1", 100), dest("grpc-helloworld-py", "v2", 0)}
	fqdn := []Backend{dest("grpc-helloworld-py.default.svc.cluster.local", "v1", 60), dest("grpc-helloworld-py.default", "v2", 40)}
	tests := []struct {
		name   string
		t      Target
		routes []RouteView
		want   Pick
		err    error
		msg    string
	}{
		{"the only route holding both", vsTarget(""), []RouteView{{Name: "other", Backends: []Backend{dest("x", "v1", 100)}}, {Backends: two}},
			Pick{Route: 1, Stable: 0, Canary: 1}, nil, ""},
		{"fqdn hosts are the short host", vsTarget(""), []RouteView{{Backends: fqdn}}, Pick{Stable: 0, Canary: 1}, nil, ""},
		{"a host in another namespace is another host", vsTarget(""),
			[]RouteView{{Backends: []Backend{dest("grpc-helloworld-py.staging.svc.cluster.local", "v1", 100), dest("grpc-helloworld-py", "v2", 0)}}},
			Pick{}, ErrRouteNotFound, "no http route holds both"},
		{"named", vsTarget("b"), []RouteView{{Name: "a", Backends: two}, {Name: "b", Backends: two}}, Pick{Route: 1, Canary: 1}, nil, ""},
		{"two hold both", vsTarget(""), []RouteView{{Name: "a", Backends: two}, {Name: "b", Backends: two}}, Pick{}, ErrRouteAmbiguous, `http routes "a", "b" all hold`},
		{"named lacks canary", vsTarget("a"), []RouteView{{Name: "a", Backends: two[:1], Line: 4, Col: 5}}, Pick{}, ErrBackendMissing, `http route "a" has no destination with subset "v2"`},
		{"a vs route is not picked by index", vsTarget("0"), []RouteView{{Backends: two}}, Pick{}, ErrRouteNotFound, `no http route is named "0"`},
		{"others", vsTarget(""), []RouteView{{Backends: append([]Backend{dest("mirror", "v1", 5)}, two...)}}, Pick{Stable: 1, Canary: 2, Others: 5}, nil, ""},
		{"rule by index", gwTarget("1", 0), []RouteView{{Backends: []Backend{ref("svc-v1", 80, 1)}}, {Backends: []Backend{ref("svc-v2", 80, 0), ref("svc-v1", 80, 100)}}},
			Pick{Route: 1, Stable: 1, Canary: 0}, nil, ""},
		{"rule index out of range", gwTarget("2", 0), []RouteView{{}}, Pick{}, ErrRouteNotFound, "there is no rule 2"},
		{"rule by name before index", gwTarget("1", 0), []RouteView{{Backends: []Backend{ref("svc-v1", 80, 100)}}, {Name: "1", Backends: []Backend{ref("svc-v1", 80, 100), ref("svc-v2", 80, 0)}}},
			Pick{Route: 1, Canary: 1}, nil, ""},
		{"port must match", gwTarget("", 50051), []RouteView{{Backends: []Backend{ref("svc-v1", 50051, 100), ref("svc-v2", 8080, 0)}}},
			Pick{}, ErrRouteNotFound, `no rule holds both backendRefs to Services "svc-v1" and "svc-v2"`},
		{"a backendRef of another kind is another backend", gwTarget("", 0),
			[]RouteView{{Backends: []Backend{ref("svc-v1", 1, 100), {Host: "svc-v2", Weight: 3}, ref("svc-v2", 1, 0)}}}, Pick{Canary: 2, Others: 3}, nil, ""},
		{"a backendRef in another namespace is another backend", gwTarget("", 0),
			[]RouteView{{Backends: []Backend{ref("svc-v1", 1, 100), {Host: "svc-v2", Namespace: "prod", Service: true}}}}, Pick{}, ErrRouteNotFound, ""},
		{"twice", gwTarget("", 0), []RouteView{{Backends: []Backend{ref("svc-v1", 1, 50), ref("svc-v2", 1, 0), ref("svc-v1", 2, 50)}}},
			Pick{}, ErrRouteAmbiguous, `holds backendRef to Service "svc-v1" twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.t.Pick("default", tt.routes)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				var re *RouteError
				if !errors.As(err, &re) || !strings.Contains(re.Error(), tt.msg) {
					t.Errorf("err = %q, want a *RouteError containing %q", err, tt.msg)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("pick (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteErrorPosition(t *testing.T) {
	_, err := gwTarget("0", 0).Pick("default", []RouteView{{Line: 12, Col: 5, Backends: []Backend{ref("svc-v1", 1, 100)}}})
	var re *RouteError
	if !errors.As(err, &re) || re.Line != 12 || re.Col != 5 || !errors.Is(err, ErrBackendMissing) {
		t.Fatalf("err = %#v, want ErrBackendMissing at 12:5", err)
	}
}

const grpcRouteSpec = `apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata:
  name: demo
spec:
  route: {kind: GRPCRoute, namespace: default, name: grpc-route, rule: 0, port: 50051}
  stable: grpc-helloworld-py-v1
  canary: grpc-helloworld-py-v2
  manifest: deploy/sample-gateway-api/route.yaml
  steps: [0, 40, 100]
  schedule: "*/10 * * * *"
`

func TestGatewayRouteSpec(t *testing.T) {
	docs, err := Parse("f.yaml", []byte(grpcRouteSpec))
	if err != nil {
		t.Fatal(err)
	}
	want := Target{Kind: KindGRPCRoute, Namespace: "default", Name: "grpc-route", Route: "0",
		Stable: "grpc-helloworld-py-v1", Canary: "grpc-helloworld-py-v2", Port: 50051}
	if diff := cmp.Diff(want, docs[0].Spec.Target()); diff != "" {
		t.Errorf("target (-want +got):\n%s", diff)
	}
	docs, err = Parse("f.yaml", []byte(base+"  route: second\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := docs[0].Spec.Target(); got.Kind != KindVirtualService || got.Route != "second" || got.Host != "grpc-helloworld-py" {
		t.Errorf("a string route is the VirtualService's http route: %+v", got)
	}
}

func TestTargetProblems(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want []string
	}{
		{"neither", strings.Replace(base, "  virtualService: {namespace: default, name: grpc-vs}\n", "", 1),
			[]string{`f.yaml:6:3: spec.virtualService: is required: {namespace, name} of a VirtualService, or else route:`}},
		{"both", strings.Replace(grpcRouteSpec, "spec:\n", "spec:\n  virtualService: {namespace: default, name: grpc-vs}\n", 1),
			[]string{`f.yaml:7:10: spec.route: names a GRPCRoute while spec.virtualService names default/grpc-vs`}},
		{"bad kind, no name, a host", strings.Replace(strings.Replace(grpcRouteSpec, "kind: GRPCRoute", "kind: TCPRoute", 1),
			"name: grpc-route, ", "", 1) + "  host: grpc-helloworld-py\n",
			[]string{
				`f.yaml:6:10: spec.route.name: is required`,
				`f.yaml:6:17: spec.route.kind: must be GRPCRoute or HTTPRoute, not "TCPRoute"`,
				`f.yaml:12:9: spec.host: is for a VirtualService's destinations`,
			}},
		{"a canary that is no Service name", strings.Replace(grpcRouteSpec, "canary: grpc-helloworld-py-v2", "canary: V2", 1),
			[]string{`f.yaml:8:11: spec.canary: "V2" is not a Service name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.spec))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v, want Problems", err)
			}
			if len(ps) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(tt.want), err)
			}
			for i, p := range ps {
				if !strings.HasPrefix(p.String(), tt.want[i]) {
					t.Errorf("problem %d = %q, want prefix %q", i, p, tt.want[i])
				}
			}
		})
	}
}
