package istio_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// repoFile reads a file of the repository, relative to its root.
func repoFile(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// exampleDoc is deploy/examples/rollout.yaml, pointed at namespace ns.
func exampleDoc(t testing.TB, ns string) *rollout.Document {
	t.Helper()
	docs, err := rollout.Parse("rollout.yaml", repoFile(t, "deploy/examples/rollout.yaml"))
	if err != nil {
		t.Fatalf("parse the example rollout: %v", err)
	}
	doc := docs[0]
	doc.Spec.VirtualService.Namespace = ns
	return doc
}

// sampleObjects decodes one of deploy/sample's files into namespace ns.
func sampleObjects(t testing.TB, file, ns string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := kubetest.Decode(repoFile(t, filepath.Join("deploy/sample", file)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, o := range objs {
		o.SetNamespace(ns)
	}
	return objs
}

// fixture is the sample system's rules in a fresh namespace of the shared
// API server.
type fixture struct {
	env    *kubetest.Env
	ns     string
	doc    *rollout.Document
	client *kubetest.Client
	kube   kubernetes.Interface
}

// newFixture creates deploy/sample/rules.yaml (after edit, when not nil) in
// a new namespace.
func newFixture(t testing.TB, edit func(objs []*unstructured.Unstructured)) *fixture {
	t.Helper()
	env := kubetest.Start(t)
	f := &fixture{env: env, ns: env.Namespace(t)}
	f.doc = exampleDoc(t, f.ns)
	var err error
	if f.client, err = kubetest.NewClient(env.Config); err != nil {
		t.Fatal(err)
	}
	f.kube = kubernetes.NewForConfigOrDie(env.Config)
	objs := sampleObjects(t, "rules.yaml", f.ns)
	if edit != nil {
		edit(objs)
	}
	if _, err := f.client.Create(context.Background(), objs, false); err != nil {
		t.Fatalf("create the sample rules: %v", err)
	}
	return f
}

// router returns a Router for cfg (the admin's when nil).
func (f *fixture) router(t testing.TB, cfg *rest.Config) *istio.Router {
	t.Helper()
	if cfg == nil {
		cfg = f.env.Config
	}
	r, err := istio.NewRouter(cfg, istio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// get reads an object of the namespace by kind and name.
func (f *fixture) get(t testing.TB, apiVersion, kind, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(f.ns)
	ri, err := f.client.Resource(u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ri.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s %s/%s: %v", kind, f.ns, name, err)
	}
	return got
}

func (f *fixture) vs(t testing.TB) *unstructured.Unstructured {
	return f.get(t, "networking.istio.io/v1", "VirtualService", "grpc-vs")
}

// snapshot is every object of the sample's rules, as stored.
func (f *fixture) snapshot(t testing.TB) []*unstructured.Unstructured {
	return []*unstructured.Unstructured{
		f.get(t, "networking.istio.io/v1", "Gateway", "grpc-gateway"),
		f.get(t, "networking.istio.io/v1", "DestinationRule", "dr-istio-grpc-server"),
		f.vs(t),
	}
}

// createApp creates deploy/sample/app.yaml and marks the Deployments named
// in available as Available (no controller-manager runs here).
func (f *fixture) createApp(t testing.TB, available ...string) {
	t.Helper()
	if _, err := f.client.Create(context.Background(), sampleObjects(t, "app.yaml", f.ns), false); err != nil {
		t.Fatalf("create the sample app: %v", err)
	}
	for _, name := range available {
		f.setAvailable(t, name, corev1.ConditionTrue)
	}
}

func (f *fixture) setAvailable(t testing.TB, name string, status corev1.ConditionStatus) {
	t.Helper()
	ctx := context.Background()
	d, err := f.kube.AppsV1().Deployments(f.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Status.ObservedGeneration = d.Generation
	d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = 1, 1, 1
	d.Status.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentAvailable, Status: status, Reason: "MinimumReplicasAvailable",
		LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}}
	if _, err := f.kube.AppsV1().Deployments(f.ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set deployment %s Available=%s: %v", name, status, err)
	}
}

// weightsOf reads the stable (v1) and canary (v2) weights of the first http
// route straight from the object.
func weightsOf(t testing.TB, vs *unstructured.Unstructured) rollout.Weights {
	t.Helper()
	https, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	var w rollout.Weights
	for _, d := range https[0].(map[string]any)["route"].([]any) {
		dm := d.(map[string]any)
		weight, _ := dm["weight"].(int64)
		switch dm["destination"].(map[string]any)["subset"] {
		case "v1":
			w.Stable = int(weight)
		case "v2":
			w.Canary = int(weight)
		}
	}
	return w
}

// comparable strips what every write changes (resourceVersion, generation,
// managedFields), so two snapshots compare on content.
func comparable(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(c.Object, "metadata", "generation")
	unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
	return c.Object
}

// withWeights returns a copy of vs whose route i holds w for v1/v2.
func withWeights(vs *unstructured.Unstructured, i int, w rollout.Weights) *unstructured.Unstructured {
	c := vs.DeepCopy()
	https := c.Object["spec"].(map[string]any)["http"].([]any)
	for _, d := range https[i].(map[string]any)["route"].([]any) {
		dm := d.(map[string]any)
		switch dm["destination"].(map[string]any)["subset"] {
		case "v1":
			dm["weight"] = int64(w.Stable)
		case "v2":
			dm["weight"] = int64(w.Canary)
		}
	}
	return c
}
