package kubetest_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canarydio/canaryd/test/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// TestStart checks the harness serves Istio's networking v1 resources.
func TestStart(t *testing.T) {
	env := kubetest.Start(t)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	res, err := kube.Discovery().ServerResourcesForGroupVersion("networking.istio.io/v1")
	if err != nil {
		t.Fatalf("discovery: %v\n%s", err, env.Output())
	}
	want := map[string]bool{"virtualservices": false, "destinationrules": false, "gateways": false}
	for _, r := range res.APIResources {
		if _, ok := want[r.Name]; ok {
			want[r.Name] = true
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("networking.istio.io/v1 lacks %s", name)
		}
	}
	ns := env.Namespace(t)
	if _, err := kube.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}
}
