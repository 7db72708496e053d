package gatewayapi_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/gatewayapi"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/kubetest"
)

// The Router is the controller's Router (and Preflighter) in apply mode.
var (
	_ controller.Router      = (*gatewayapi.Router)(nil)
	_ controller.Preflighter = (*gatewayapi.Router)(nil)
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// fixture is deploy/sample-gateway-api in a fresh namespace of the shared API server.
type fixture struct {
	env    *kubetest.Env
	ns     string
	client *kubetest.Client
	kube   kubernetes.Interface
	r      *gatewayapi.Router
}

// sample reads deploy/sample-gateway-api's files, pointed at namespace ns.
func sample(t testing.TB, ns string, files ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("..", "deploy", "sample-gateway-api", f))
		if err != nil {
			t.Fatal(err)
		}
		o, err := kubetest.Decode([]byte(strings.ReplaceAll(string(data), "namespace: default", "namespace: "+ns)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		objs = append(objs, o...)
	}
	return objs
}

func newFixture(t testing.TB, extra ...*unstructured.Unstructured) *fixture {
	t.Helper()
	env := kubetest.Start(t)
	f := &fixture{env: env, ns: env.Namespace(t), kube: kubernetes.NewForConfigOrDie(env.Config)}
	var err error
	if f.client, err = kubetest.NewClient(env.Config); err != nil {
		t.Fatal(err)
	}
	objs := append(sample(t, f.ns, "services.yaml", "gateway.yaml", "route.yaml"), extra...)
	for _, o := range extra {
		o.SetNamespace(f.ns)
	}
	if _, err := f.client.Create(context.Background(), objs, false); err != nil {
		t.Fatalf("create the sample: %v", err)
	}
	if f.r, err = gatewayapi.NewRouter(env.Config, gatewayapi.Options{}); err != nil {
		t.Fatal(err)
	}
	return f
}

// doc is deploy/examples/rollout-grpcroute.yaml pointed at the fixture's namespace.
func (f *fixture) doc(t testing.TB) *rollout.Document {
	t.Helper()
	data, err := os.ReadFile("../deploy/examples/rollout-grpcroute.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := rollout.Parse("rollout-grpcroute.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	docs[0].Spec.Route.Namespace = f.ns
	return docs[0]
}

// object reads a route as the API server stores it, with the dynamic client.
func (f *fixture) object(t testing.TB, kind, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("gateway.networking.k8s.io/v1")
	u.SetKind(kind)
	u.SetNamespace(f.ns)
	ri, err := f.client.Resource(u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ri.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// backendWeights returns the weights of every backendRef of every rule, by Service name.
func backendWeights(t testing.TB, u *unstructured.Unstructured) []map[string]int64 {
	t.Helper()
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	var out []map[string]int64
	for _, r := range rules {
		m := map[string]int64{}
		refs, _, _ := unstructured.NestedSlice(r.(map[string]any), "backendRefs")
		for _, ref := range refs {
			rm := ref.(map[string]any)
			w, _ := rm["weight"].(int64)
			m[rm["name"].(string)] = w
		}
		out = append(out, m)
	}
	return out
}

// withoutWeights is the object's spec with every weight dropped and its metadata's
// bookkeeping fields, to compare all else.
func withoutWeights(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	rules, _, _ := unstructured.NestedSlice(c.Object, "spec", "rules")
	for _, r := range rules {
		refs, _, _ := unstructured.NestedSlice(r.(map[string]any), "backendRefs")
		for _, ref := range refs {
			delete(ref.(map[string]any), "weight")
		}
		unstructured.SetNestedSlice(r.(map[string]any), refs, "backendRefs")
	}
	unstructured.SetNestedSlice(c.Object, rules, "spec", "rules")
	md := c.Object["metadata"].(map[string]any)
	for _, k := range []string{"resourceVersion", "generation", "managedFields"} {
		delete(md, k)
	}
	return c.Object
}

// TestSetWeightsGRPCRoute steps the sample's GRPCRoute 100/0 → 60/40 → 0/100 and checks
// after every step, on the API server, that the two weights are set and nothing else moved.
func TestSetWeightsGRPCRoute(t *testing.T) {
	f := newFixture(t)
	doc := f.doc(t)
	ctx := context.Background()
	before := f.object(t, "GRPCRoute", "grpc-route")
	if got, err := f.r.Weights(ctx, doc); err != nil || got != rollout.CanaryAt(0) {
		t.Fatalf("initial weights %s, %v; want 100/0", got, err)
	}
	for _, w := range []rollout.Weights{rollout.CanaryAt(0), rollout.CanaryAt(40), rollout.CanaryAt(100)} {
		if err := f.r.SetWeights(ctx, doc, w); err != nil {
			t.Fatalf("set %s: %v", w, err)
		}
		after := f.object(t, "GRPCRoute", "grpc-route")
		want := []map[string]int64{{"grpc-helloworld-py-v1": int64(w.Stable), "grpc-helloworld-py-v2": int64(w.Canary)}}
		if d := cmp.Diff(want, backendWeights(t, after)); d != "" {
			t.Errorf("stored weights at %s (-want +got):\n%s", w, d)
		}
		if d := cmp.Diff(withoutWeights(before), withoutWeights(after)); d != "" {
			t.Errorf("at %s more than the weights changed (-before +after):\n%s", w, d)
		}
	}
	rv := f.object(t, "GRPCRoute", "grpc-route").GetResourceVersion()
	if err := f.r.SetWeights(ctx, doc, rollout.CanaryAt(100)); err != nil {
		t.Fatal(err)
	}
	if got := f.object(t, "GRPCRoute", "grpc-route").GetResourceVersion(); got != rv {
		t.Errorf("setting the weights the route holds wrote it (resourceVersion %s → %s)", rv, got)
	}
}

// httpRoute is an HTTPRoute with two rules that both hold the two Services, so the
// rollout must name its rule, and a third backend in the first.
func httpRoute() *unstructured.Unstructured {
	ref := func(name string, w int64) map[string]any {
		return map[string]any{"name": name, "port": int64(50051), "weight": w}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "grpc-gateway"}},
			"rules": []any{
				map[string]any{"name": "beta", "matches": []any{map[string]any{"headers": []any{map[string]any{"name": "x-beta", "value": "1"}}}},
					"backendRefs": []any{ref("grpc-helloworld-py-v1", 50), ref("grpc-helloworld-py-v2", 40), ref("legacy", 10)}},
				map[string]any{"name": "split", "backendRefs": []any{ref("grpc-helloworld-py-v2", 0), ref("grpc-helloworld-py-v1", 100)}},
			},
		},
	}}
}

func httpDoc(ns, rule string) *rollout.Document {
	return &rollout.Document{Metadata: rollout.Metadata{Name: "web"}, Spec: rollout.Spec{
		Route:  rollout.RouteRef{Kind: rollout.KindHTTPRoute, Namespace: ns, Name: "web", Rule: rule},
		Stable: "grpc-helloworld-py-v1", Canary: "grpc-helloworld-py-v2",
	}}
}

func TestSetWeightsHTTPRoute(t *testing.T) {
	f := newFixture(t, httpRoute())
	ctx := context.Background()
	if err := f.r.SetWeights(ctx, httpDoc(f.ns, "split"), rollout.CanaryAt(40)); err != nil {
		t.Fatal(err)
	}
	want := []map[string]int64{
		{"grpc-helloworld-py-v1": 50, "grpc-helloworld-py-v2": 40, "legacy": 10},
		{"grpc-helloworld-py-v1": 60, "grpc-helloworld-py-v2": 40},
	}
	if d := cmp.Diff(want, backendWeights(t, f.object(t, "HTTPRoute", "web"))); d != "" {
		t.Errorf("weights (-want +got):\n%s", d)
	}
	if err := f.r.SetWeights(ctx, httpDoc(f.ns, "1"), rollout.CanaryAt(100)); err != nil {
		t.Fatalf("rule by index: %v", err)
	}
	for _, tc := range []struct {
		name string
		doc  *rollout.Document
		want error
		msg  string
	}{
		{"two rules hold both", httpDoc(f.ns, ""), gatewayapi.ErrAmbiguousRule, `rules "beta", "split" all hold`},
		{"a third backend holds weight", httpDoc(f.ns, "beta"), gatewayapi.ErrBadWeights, "sends weight 10 to other backends"},
		{"no such rule", httpDoc(f.ns, "gamma"), gatewayapi.ErrRuleNotFound, `no rule is named "gamma"`},
		{"no such route", httpDoc("nowhere", "split"), gatewayapi.ErrNotFound, "httproute nowhere/web"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.object(t, "HTTPRoute", "web").GetResourceVersion()
			err := f.r.SetWeights(ctx, tc.doc, rollout.CanaryAt(40))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("SetWeights = %v, want %v saying %q", err, tc.want, tc.msg)
			}
			if after := f.object(t, "HTTPRoute", "web").GetResourceVersion(); after != before {
				t.Errorf("a refused change wrote the route")
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	f := newFixture(t)
	doc := f.doc(t)
	ctx := context.Background()
	if err := f.r.Preflight(ctx, doc); err != nil {
		t.Fatalf("preflight of the sample: %v", err)
	}
	doc.Spec.Route.Port = 8080
	if err := f.r.Preflight(ctx, doc); !errors.Is(err, gatewayapi.ErrRuleNotFound) {
		t.Errorf("preflight with a port no backendRef names = %v, want ErrRuleNotFound", err)
	}
	doc.Spec.Route.Port = 0
	if err := f.kube.CoreV1().Services(f.ns).Delete(ctx, "grpc-helloworld-py-v2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := f.r.Preflight(ctx, doc)
	if !errors.Is(err, gatewayapi.ErrServiceMissing) || !strings.Contains(err.Error(), "grpc-helloworld-py-v2 does not exist") {
		t.Errorf("preflight without the canary Service = %v, want ErrServiceMissing naming it", err)
	}
}

// TestRBACEnough runs the Router as deploy/canaryd's ServiceAccount, with the
// ClusterRole that deploy/canaryd/rbac.yaml grants it.
func TestRBACEnough(t *testing.T) {
	f := newFixture(t)
	// deploy/canaryd grants the routes Role per namespace (routes-rbac.yaml); an overlay
	// copies it into each namespace canaryd drives, as here into the test's.
	data, err := os.ReadFile("../deploy/canaryd/routes-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kubetest.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		o.SetNamespace(f.ns)
		if o.GetKind() == "RoleBinding" {
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subjects {
				s.(map[string]any)["namespace"] = "canaryd"
			}
			unstructured.SetNestedSlice(o.Object, subjects, "subjects")
		}
	}
	if _, err := f.client.Create(context.Background(), objs, false); err != nil {
		t.Fatal(err)
	}
	sa := rest.CopyConfig(f.env.Config)
	sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:canaryd:canaryd"}
	r, err := gatewayapi.NewRouter(sa, gatewayapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc := f.doc(t)
	ctx := context.Background()
	// RBAC may take a moment to reach the authorizer's cache.
	kubetest.Eventually(t, 10*time.Second, func() (bool, string) {
		err := r.Preflight(ctx, doc)
		return err == nil, fmt.Sprint(err)
	})
	if err := r.SetWeights(ctx, doc, rollout.CanaryAt(40)); err != nil {
		t.Fatalf("SetWeights as the ServiceAccount: %v", err)
	}
	kube := kubernetes.NewForConfigOrDie(sa)
	if _, err := kube.CoreV1().Secrets(f.ns).List(ctx, metav1.ListOptions{}); !kubetest.IsForbidden(err) {
		t.Errorf("the ServiceAccount may list Secrets: %v", err)
	}
}
