package istio_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/rollout"
)

// The Router is the controller's Router in apply mode.
var _ controller.Router = (*istio.Router)(nil)

// richRoute adds a second http route (another host, with retries, timeout
// and headers) and extra fields to the sample's VirtualService, so that a
// whole-object comparison shows anything the Router touches beyond weights.
func richRoute(objs []*unstructured.Unstructured) {
	for _, o := range objs {
		if o.GetKind() != "VirtualService" {
			continue
		}
		spec := o.Object["spec"].(map[string]any)
		spec["exportTo"] = []any{"."}
		first := spec["http"].([]any)[0].(map[string]any)
		first["timeout"] = "5s"
		first["retries"] = map[string]any{"attempts": int64(3), "perTryTimeout": "2s", "retryOn": "unavailable"}
		spec["http"] = append(spec["http"].([]any), map[string]any{
			"name":  "admin",
			"match": []any{map[string]any{"port": int64(9090)}},
			"headers": map[string]any{"request": map[string]any{
				"set": map[string]any{"x-route": "admin"}}},
			"route": []any{map[string]any{
				"destination": map[string]any{"host": "admin-svc", "port": map[string]any{"number": int64(9090)}},
				"weight":      int64(100),
			}},
		})
		o.SetAnnotations(map[string]string{"owner": "platform-team"})
		o.SetLabels(map[string]string{"app": "grpc-helloworld-py"})
	}
}

// TestSetWeightsSteps walks grpc-vs through 100/0 → 60/40 → 0/100 and checks
// after every step that exactly the two weights changed and every other
// field and object is as it was.
func TestSetWeightsSteps(t *testing.T) {
	f := newFixture(t, richRoute)
	r := f.router(t, nil)
	ctx := context.Background()
	before := f.snapshot(t)
	got, err := r.Weights(ctx, f.doc)
	if err != nil {
		t.Fatal(err)
	}
	if want := (rollout.Weights{Stable: 100, Canary: 0}); got != want {
		t.Fatalf("initial weights %s, want %s", got, want)
	}
	for _, w := range []rollout.Weights{{Stable: 100}, {Stable: 60, Canary: 40}, {Stable: 0, Canary: 100}} {
		if err := r.SetWeights(ctx, f.doc, w); err != nil {
			t.Fatalf("set %s: %v", w, err)
		}
		after := f.snapshot(t)
		if got := weightsOf(t, after[2]); got != w {
			t.Errorf("stored weights %s, want %s", got, w)
		}
		if got, err := r.Weights(ctx, f.doc); err != nil || got != w {
			t.Errorf("Weights = %s, %v; want %s", got, err, w)
		}
		want := withWeights(before[2], 0, w)
		if d := cmp.Diff(comparable(want), comparable(after[2])); d != "" {
			t.Errorf("set %s changed more than the weights (-want +got):\n%s", w, d)
		}
		for i := range 2 {
			if d := cmp.Diff(before[i].Object, after[i].Object); d != "" {
				t.Errorf("set %s changed %s (-before +after):\n%s", w, before[i].GetKind(), d)
			}
		}
	}
}

// TestSetWeightsIdempotent: setting the weights the cluster holds sends no
// update (the resourceVersion stays).
func TestSetWeightsIdempotent(t *testing.T) {
	f := newFixture(t, nil)
	r := f.router(t, nil)
	ctx := context.Background()
	if err := r.SetWeights(ctx, f.doc, rollout.CanaryAt(40)); err != nil {
		t.Fatal(err)
	}
	rv := f.vs(t).GetResourceVersion()
	if err := r.SetWeights(ctx, f.doc, rollout.CanaryAt(40)); err != nil {
		t.Fatal(err)
	}
	if got := f.vs(t).GetResourceVersion(); got != rv {
		t.Errorf("resourceVersion %s → %s: a repeated SetWeights wrote the object", rv, got)
	}
}

// bumpOnFirstPut is a transport that, before the Router's first update of
// the VirtualService reaches the API server, has another writer change the
// object, so the update carries a stale resourceVersion.
type bumpOnFirstPut struct {
	bump  func() error
	puts  atomic.Int32
	fired atomic.Bool
	err   atomic.Value
}

// wrap returns a transport that runs the bump before the first PUT of a
// VirtualService, then forwards to next.
func (b *bumpOnFirstPut) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/virtualservices/") {
			b.puts.Add(1)
			if b.fired.CompareAndSwap(false, true) {
				if err := b.bump(); err != nil {
					b.err.Store(err)
				}
			}
		}
		return next.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestSetWeightsConflict: a concurrent writer changes the object between the
// Router's read and its update; the conflict is retried and both changes
// survive.
func TestSetWeightsConflict(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	bump := func() error {
		patch := []byte(`{"metadata":{"labels":{"bumped-by":"another-writer"}},"spec":{"gateways":["grpc-gateway","mesh"]}}`)
		_, err := f.client.Dynamic.Resource(istio.VirtualServices).Namespace(f.ns).
			Patch(ctx, "grpc-vs", types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}
	cfg := rest.CopyConfig(f.env.Config)
	b := &bumpOnFirstPut{bump: bump}
	cfg.Wrap(b.wrap)
	r := f.router(t, cfg)
	if err := r.SetWeights(ctx, f.doc, rollout.CanaryAt(40)); err != nil {
		t.Fatalf("SetWeights with a concurrent writer: %v", err)
	}
	if !b.fired.Load() {
		t.Fatal("the concurrent writer never ran")
	}
	if err, _ := b.err.Load().(error); err != nil {
		t.Fatalf("concurrent writer: %v", err)
	}
	if got := b.puts.Load(); got != 2 {
		t.Errorf("%d updates sent, want 2 (one refused with a conflict, one retried)", got)
	}
	vs := f.vs(t)
	if got := weightsOf(t, vs); got != rollout.CanaryAt(40) {
		t.Errorf("weights %s, want 60/40", got)
	}
	if got := vs.GetLabels()["bumped-by"]; got != "another-writer" {
		t.Errorf("the other writer's label is %q: its change was lost", got)
	}
	gws, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "gateways")
	if d := cmp.Diff([]string{"grpc-gateway", "mesh"}, gws); d != "" {
		t.Errorf("the other writer's gateways were lost (-want +got):\n%s", d)
	}
}

// TestSetWeightsRefusals: each refusal names its cause and leaves every
// object as it was.
func TestSetWeightsRefusals(t *testing.T) {
	twoRoutes := func(objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if o.GetKind() == "VirtualService" {
				https := o.Object["spec"].(map[string]any)["http"].([]any)
				dup := runtimeCopy(https[0])
				dup["match"] = []any{map[string]any{"port": int64(9090)}}
				o.Object["spec"].(map[string]any)["http"] = append(https, dup)
			}
		}
	}
	thirdDest := func(objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if o.GetKind() == "VirtualService" {
				rt := o.Object["spec"].(map[string]any)["http"].([]any)[0].(map[string]any)
				ds := rt["route"].([]any)
				ds[0].(map[string]any)["weight"] = int64(90)
				rt["route"] = append(ds, map[string]any{
					"destination": map[string]any{"host": "legacy", "subset": "v0"}, "weight": int64(10)})
			}
		}
	}
	tests := []struct {
		name    string
		edit    func([]*unstructured.Unstructured)
		doc     func(*rollout.Document)
		w       rollout.Weights
		want    error
		message string
	}{
		{name: "virtualservice missing", doc: func(d *rollout.Document) { d.Spec.VirtualService.Name = "nope" },
			w: rollout.CanaryAt(40), want: istio.ErrNotFound, message: "/nope"},
		{name: "named route missing", doc: func(d *rollout.Document) { d.Spec.Route.HTTP = "primary" },
			w: rollout.CanaryAt(40), want: istio.ErrRouteNotFound, message: `no http route is named "primary"`},
		{name: "no route holds both subsets", doc: func(d *rollout.Document) { d.Spec.Canary = "v3" },
			w: rollout.CanaryAt(40), want: istio.ErrRouteNotFound, message: `subsets "v1" and "v3"`},
		{name: "two routes hold both subsets", edit: twoRoutes,
			w: rollout.CanaryAt(40), want: istio.ErrAmbiguousRoute, message: "#0, #1"},
		{name: "weights do not sum to 100", w: rollout.Weights{Stable: 70, Canary: 40},
			want: istio.ErrBadWeights, message: "70/40"},
		{name: "negative weight", w: rollout.Weights{Stable: 110, Canary: -10},
			want: istio.ErrBadWeights, message: "110/-10"},
		{name: "other destinations carry weight", edit: thirdDest, w: rollout.CanaryAt(40),
			want: istio.ErrBadWeights, message: "would sum to 110"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.edit)
			if tc.doc != nil {
				tc.doc(f.doc)
			}
			before := f.snapshot(t)
			err := f.router(t, nil).SetWeights(context.Background(), f.doc, tc.w)
			if !errors.Is(err, tc.want) {
				t.Fatalf("SetWeights = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not say %q", err, tc.message)
			}
			if d := cmp.Diff(before, f.snapshot(t)); d != "" {
				t.Errorf("a refused SetWeights changed objects (-before +after):\n%s", d)
			}
		})
	}
}

func runtimeCopy(v any) map[string]any {
	return (&unstructured.Unstructured{Object: map[string]any{"v": v}}).DeepCopy().Object["v"].(map[string]any)
}

// countRequests counts the requests for VirtualServices by method.
type countRequests struct{ get, put atomic.Int32 }

func (c *countRequests) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if strings.Contains(req.URL.Path, "/virtualservices/") {
			switch req.Method {
			case http.MethodGet:
				c.get.Add(1)
			case http.MethodPut:
				c.put.Add(1)
			}
		}
		return next.RoundTrip(req)
	})
}

func (c *countRequests) take() (get, put int32) { return c.get.Swap(0), c.put.Swap(0) }

// TestSetWeightsFromTheLastAnswer: a change starts from the object as the API server last
// answered, so a step after a step is one update and no read. When another writer changed
// the object in between, that update is refused as a conflict, the object is read again,
// and the other writer's change survives. A no-op is one read, never an update.
func TestSetWeightsFromTheLastAnswer(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	cfg := rest.CopyConfig(f.env.Config)
	c := &countRequests{}
	cfg.Wrap(c.wrap)
	r := f.router(t, cfg)
	step := func(w rollout.Weights, wantGet, wantPut int32) {
		t.Helper()
		if err := r.SetWeights(ctx, f.doc, w); err != nil {
			t.Fatalf("set %s: %v", w, err)
		}
		if got := weightsOf(t, f.vs(t)); got != w {
			t.Fatalf("after set %s the API server holds %s", w, got)
		}
		if get, put := c.take(); get != wantGet || put != wantPut {
			t.Errorf("set %s: %d reads and %d updates, want %d and %d", w, get, put, wantGet, wantPut)
		}
	}
	step(rollout.CanaryAt(40), 1, 1)  // nothing remembered yet: read, update
	step(rollout.CanaryAt(100), 0, 1) // from the update's answer
	patch := []byte(`{"metadata":{"labels":{"edited-by":"a-person"}}}`)
	if _, err := f.client.Dynamic.Resource(istio.VirtualServices).Namespace(f.ns).
		Patch(ctx, "grpc-vs", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	step(rollout.CanaryAt(0), 1, 2) // the stale update refused, read, update
	if got := f.vs(t).GetLabels()["edited-by"]; got != "a-person" {
		t.Errorf("the person's label is %q after canaryd's update: their change was lost", got)
	}
	step(rollout.CanaryAt(0), 1, 0) // a no-op: read, nothing sent
}
