package istio_test

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canarydio/canaryd/rollout"
)

// fqdnHosts rewrites the sample's destinations and DestinationRule to name the host by
// its FQDN (the spec keeps the short name).
func fqdnHosts(objs []*unstructured.Unstructured) {
	for _, o := range objs {
		fqdn := "grpc-helloworld-py." + o.GetNamespace() + ".svc.cluster.local"
		switch o.GetKind() {
		case "DestinationRule":
			_ = unstructured.SetNestedField(o.Object, fqdn, "spec", "host")
		case "VirtualService":
			http, _, _ := unstructured.NestedSlice(o.Object, "spec", "http")
			for _, d := range http[0].(map[string]any)["route"].([]any) {
				d.(map[string]any)["destination"].(map[string]any)["host"] = fqdn
			}
			_ = unstructured.SetNestedSlice(o.Object, http, "spec", "http")
		}
	}
}

// TestFQDNHosts: a VirtualService and DestinationRule naming the host by its FQDN, with the
// spec naming it short, pass preflight and step on the API server.
func TestFQDNHosts(t *testing.T) {
	f := newFixture(t, fqdnHosts)
	f.createApp(t, "grpc-helloworld-py-v1", "grpc-helloworld-py-v2")
	r := f.router(t, nil)
	ctx := context.Background()
	if err := r.Preflight(ctx, f.doc); err != nil {
		t.Fatalf("preflight: %v", err)
	}
	for _, w := range []rollout.Weights{rollout.CanaryAt(40), rollout.CanaryAt(100)} {
		if err := r.SetWeights(ctx, f.doc, w); err != nil {
			t.Fatalf("set %s: %v", w, err)
		}
		if got := weightsOf(t, f.vs(t)); got != w {
			t.Errorf("stored weights %s, want %s", got, w)
		}
	}
}
