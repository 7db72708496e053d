package serve_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/gateway"
	"github.com/canarydio/canaryd/test/kubetest"
)

// seedRemote makes the bare remote with the sample's rules.yaml at 100/0 and the spec.
func (w *world) seedRemote() {
	w.remote = filepath.Join(w.dir, "remote.git")
	w.git(w.dir, "init", "-q", "--bare", "-b", "main", w.remote)
	work := filepath.Join(w.dir, "seed")
	w.git(w.dir, "clone", "-q", w.remote, work)
	w.git(work, "checkout", "-q", "-b", "main")
	write(w.t, filepath.Join(work, w.manifestPath()), w.manifest())
	write(w.t, filepath.Join(work, "rollouts/grpc-helloworld-py.yaml"), w.spec(""))
	w.git(work, "add", "-A")
	w.git(work, "commit", "-q", "-m", "sample system and its rollout")
	w.git(work, "push", "-q", "origin", "main")
}

func write(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// seedCluster creates the sample's objects in the test's namespace, with both
// Deployments marked Available (no controller-manager runs here).
func (w *world) seedCluster() {
	ctx := context.Background()
	app, err := os.ReadFile("../../deploy/sample/app.yaml")
	if err != nil {
		w.t.Fatal(err)
	}
	objs, err := kubetest.Decode([]byte(w.manifest() + "\n---\n" + strings.ReplaceAll(string(app)+w.gatewayAPIObjects(), "namespace: default", "namespace: "+w.ns)))
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.kclient.Create(ctx, objs, false); err != nil {
		w.t.Fatal(err)
	}
	markAvailable(w.t, w.kube.Config, w.ns, "grpc-helloworld-py-v1", "grpc-helloworld-py-v2")
}

// markAvailable marks Deployments Available, as a controller-manager would once their
// pods are up (none runs here).
func markAvailable(t testing.TB, cfg *rest.Config, ns string, names ...string) {
	t.Helper()
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Status.ObservedGeneration = d.Generation
		d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = 1, 1, 1
		d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
			Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
		if _, err := cs.AppsV1().Deployments(ns).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// clusterWeights reads grpc-vs's route weights from the API server.
func (w *world) clusterWeights() rollout.Weights {
	w.t.Helper()
	if w.grpcRoute {
		return w.grpcRouteWeights()
	}
	return w.clusterWeightsOf("grpc-vs")
}

// clusterWeightsOf reads the weights of the VirtualService vs from the API server.
func (w *world) clusterWeightsOf(vs string) rollout.Weights {
	w.t.Helper()
	u, err := w.kclient.Dynamic.Resource(istio.VirtualServices).Namespace(w.ns).Get(context.Background(), vs, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	routes, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	route := routes[0].(map[string]any)["route"].([]any)
	var wt rollout.Weights
	for _, r := range route {
		m := r.(map[string]any)
		subset := m["destination"].(map[string]any)["subset"]
		weight, _ := m["weight"].(int64)
		if subset == "v1" {
			wt.Stable = int(weight)
		} else {
			wt.Canary = int(weight)
		}
	}
	return wt
}

// gitWeights reads grpc-vs's weights at the remote's head with the git CLI.
func (w *world) gitWeights() rollout.Weights {
	w.t.Helper()
	return w.gitWeightsOf(w.manifestPath(), w.ref())
}

// gitWeightsOf reads ref's weights in file at the remote's head with the git CLI.
func (w *world) gitWeightsOf(file string, ref gitops.VSRef) rollout.Weights {
	w.t.Helper()
	data := w.git(w.remote, "show", "main:"+file)
	wt, err := gitops.ReadWeights([]byte(data), ref)
	if err != nil {
		w.t.Fatal(err)
	}
	return wt
}

func (w *world) startGateway() {
	gw, err := gateway.Start(context.Background(), gateway.Options{
		Listen: w.gw0Addr(), Metrics: "127.0.0.1:0",
		Stable: gateway.Backend{Subset: "v1", Addr: w.v1Addr, Service: w.backendService("v1")},
		Canary: gateway.Backend{Subset: "v2", Addr: w.v2Addr, Service: w.backendService("v2")},
		Git: gateway.Git{URL: "file://" + w.remote, Manifest: w.manifestPath(), CacheDir: filepath.Join(w.dir, "gateway"),
			Ref: w.ref()},
		Service: "grpc-helloworld-py", Namespace: w.ns, Refresh: 500 * time.Millisecond,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.gw = gw
	w.t.Cleanup(func() { gw.Close() })
}

// rawCodec sends and receives messages as bytes, so the traffic needs no generated code.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// startTraffic sends about 50 calls a second through the gateway until the test ends.
func (w *world) startTraffic() {
	conn, err := grpc.NewClient(w.gw.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype("proto"), grpc.ForceCodec(rawCodec{})))
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		req := []byte{0x0a, 0x04, 'J', 'a', 'c', 'k'} // HelloRequest{name: "Jack"}
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			var reply []byte
			_ = conn.Invoke(cctx, "/helloworld.Greeter/SayHello", &req, &reply)
			ccancel()
		}
	}()
	w.t.Cleanup(func() { cancel(); <-done; conn.Close() })
}
