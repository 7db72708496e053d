package istio_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/golden"
	"github.com/canarydio/canaryd/test/kubetest"
)

// canarydSA is the user the API server sees for canaryd's ServiceAccount.
const canarydSA = "system:serviceaccount:canaryd:canaryd"

// renderCanarydYAML renders deploy/canaryd with kustomize's Go API, as
// `kubectl apply -k deploy/canaryd` would.
func renderCanarydYAML(t testing.TB) []byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("..", "deploy", "canaryd"))
	if err != nil {
		t.Fatalf("kustomize deploy/canaryd: %v", err)
	}
	data, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestDeployCanarydRendered pins what deploy/canaryd renders to, so a change
// to the manifests shows up in review (go test -run Rendered -update).
func TestDeployCanarydRendered(t *testing.T) {
	got := renderCanarydYAML(t)
	golden.Check(t, filepath.Join("testdata", "canaryd.golden.yaml"), got)
}

// renderCanaryd is deploy/canaryd's objects.
func renderCanaryd(t testing.TB) []*unstructured.Unstructured {
	t.Helper()
	objs, err := kubetest.Decode(renderCanarydYAML(t))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// The objects of deploy/canaryd are created once per test binary; the
// namespace "canaryd" and its cluster-wide RBAC are shared.
var canarydOnce struct {
	sync.Once
	objs []*unstructured.Unstructured
	err  error
}

func installCanaryd(t testing.TB, env *kubetest.Env) []*unstructured.Unstructured {
	t.Helper()
	objs := renderCanaryd(t)
	canarydOnce.Do(func() {
		c, err := kubetest.NewClient(env.Config)
		if err != nil {
			canarydOnce.err = err
			return
		}
		canarydOnce.objs, canarydOnce.err = c.Create(context.Background(), objs, false)
	})
	if canarydOnce.err != nil {
		t.Fatalf("create deploy/canaryd: %v", canarydOnce.err)
	}
	return canarydOnce.objs
}

// TestDeploySampleAccepted: deploy/sample's objects pass the API server's
// validation (Istio's CRD schemas included) in a server-side dry run, in the
// namespace they name.
func TestDeploySampleAccepted(t *testing.T) {
	env := kubetest.Start(t)
	c, err := kubetest.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"rules.yaml", "app.yaml"} {
		t.Run(file, func(t *testing.T) {
			objs, err := kubetest.Decode(repoFile(t, filepath.Join("deploy/sample", file)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Create(context.Background(), objs, true)
			if err != nil {
				t.Fatalf("dry-run: %v", err)
			}
			if len(got) != len(objs) || len(objs) != 3 {
				t.Errorf("%d of %d objects accepted, want 3", len(got), len(objs))
			}
		})
	}
}

// TestDeployCanarydAccepted: every object kustomize renders from
// deploy/canaryd is created by the API server, and the base holds what the
// issue asks for: a StatefulSet with a claim for the data dir, a
// PodDisruptionBudget, a pinned image, and rights on VirtualServices only in
// the namespaces it lists.
func TestDeployCanarydAccepted(t *testing.T) {
	env := kubetest.Start(t)
	objs := installCanaryd(t, env)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
		want := "canaryd"
		if o.GetName() == "canaryd-routes" {
			want = "default" // routes-rbac.yaml's namespace, where deploy/sample lives
		}
		if o.GetKind() != "Namespace" && !isClusterScoped(o.GetKind()) && o.GetNamespace() != want {
			t.Errorf("%s/%s is in namespace %q, want %s", o.GetKind(), o.GetName(), o.GetNamespace(), want)
		}
		if isClusterScoped(o.GetKind()) {
			t.Errorf("deploy/canaryd has the cluster-wide %s/%s", o.GetKind(), o.GetName())
		}
	}
	for _, want := range []string{"Namespace/canaryd", "ServiceAccount/canaryd", "Role/canaryd-routes",
		"RoleBinding/canaryd-routes", "Role/canaryd-leader-election", "RoleBinding/canaryd-leader-election",
		"Secret/canaryd", "Service/canaryd", "StatefulSet/canaryd", "PodDisruptionBudget/canaryd"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("deploy/canaryd lacks %s (has %v)", want, kinds)
		}
	}
	kube := kubernetes.NewForConfigOrDie(env.Config)
	d, err := kube.AppsV1().StatefulSets("canaryd").Get(context.Background(), "canaryd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := *d.Spec.Replicas; got != 2 {
		t.Errorf("replicas %d, want 2", got)
	}
	pod := d.Spec.Template.Spec
	if got := pod.ServiceAccountName; got != "canaryd" {
		t.Errorf("serviceAccountName %q, want canaryd", got)
	}
	if img := pod.Containers[0].Image; !strings.HasPrefix(img, "ghcr.io/canarydio/canaryd:v") {
		t.Errorf("image %q, want a pinned release tag", img)
	}
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the pod may run as root")
	}
	var vols []string
	for _, v := range pod.Volumes {
		switch {
		case v.ConfigMap != nil:
			vols = append(vols, "configmap")
		case v.Secret != nil:
			vols = append(vols, "secret")
		}
	}
	for _, c := range d.Spec.VolumeClaimTemplates {
		vols = append(vols, "claim:"+c.Name)
	}
	slices.Sort(vols)
	if !slices.Equal(vols, []string{"claim:data", "configmap", "secret"}) {
		t.Errorf("volumes %v, want the config, the secret and a claim for the data dir", vols)
	}
	pdb, err := kube.PolicyV1().PodDisruptionBudgets("canaryd").Get(context.Background(), "canaryd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pdb.Spec.Selector == nil || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "canaryd" {
		t.Errorf("the PodDisruptionBudget selects %v, not canaryd's pods", pdb.Spec.Selector)
	}
}

// grantRoutes gives canaryd's ServiceAccount deploy/canaryd's routes Role in
// ns, as an overlay that lists ns does.
func grantRoutes(t *testing.T, env *kubetest.Env, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	var grant []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetName() == "canaryd-routes" {
			c := o.DeepCopy()
			c.SetNamespace(ns)
			c.SetResourceVersion("")
			c.SetUID("")
			grant = append(grant, c)
		}
	}
	if len(grant) != 2 {
		t.Fatalf("deploy/canaryd has %d canaryd-routes objects, want a Role and a RoleBinding", len(grant))
	}
	c, err := kubetest.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(context.Background(), grant, false); err != nil {
		t.Fatalf("grant the routes Role in %s: %v", ns, err)
	}
	// The API server's authorizer learns of the binding from its informers: wait for it.
	kube := kubernetes.NewForConfigOrDie(env.Config)
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: canarydSA,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "update", Group: "networking.istio.io", Resource: "virtualservices"}}}
	kubetest.Eventually(t, 10*time.Second, func() (bool, string) {
		got, err := kube.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), review, metav1.CreateOptions{})
		if err != nil {
			return false, err.Error()
		}
		return got.Status.Allowed, "the routes Role is not in force yet"
	})
}

func isClusterScoped(kind string) bool {
	return kind == "ClusterRole" || kind == "ClusterRoleBinding"
}

// impersonate returns env's config acting as user.
func impersonate(env *kubetest.Env, user string) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return cfg
}

// TestDeployRBACEnough runs the Router and leader election as deploy/canaryd's
// ServiceAccount: in a namespace the base does not list, nothing is allowed;
// once the routes Role is granted there, everything canaryd does is allowed,
// Secrets are not.
func TestDeployRBACEnough(t *testing.T) {
	f := newFixture(t, nil)
	objs := installCanaryd(t, f.env)
	f.createApp(t, "grpc-helloworld-py-v1", "grpc-helloworld-py-v2")
	sa := impersonate(f.env, canarydSA)
	r := f.router(t, sa)
	ctx := context.Background()
	// Not listed: the ServiceAccount may not touch the namespace's VirtualServices.
	if err := r.SetWeights(ctx, f.doc, rollout.CanaryAt(40)); !kubetest.IsForbidden(err) {
		t.Fatalf("SetWeights in a namespace deploy/canaryd does not list = %v, want forbidden", err)
	}
	grantRoutes(t, f.env, objs, f.ns)
	if err := r.Preflight(ctx, f.doc); err != nil {
		t.Fatalf("Preflight as the ServiceAccount: %v", err)
	}
	if err := r.SetWeights(ctx, f.doc, rollout.CanaryAt(40)); err != nil {
		t.Fatalf("SetWeights as the ServiceAccount: %v", err)
	}
	if took, err := r.WaitFor(ctx, f.doc, rollout.CanaryAt(40), 10*time.Second); err != nil {
		t.Fatalf("WaitFor as the ServiceAccount (%s): %v", took, err)
	}
	ran := false
	err := istio.Elect(ctx, sa, istio.LeaseOptions{Namespace: "canaryd", Name: "canaryd-rbac-test", Identity: "pod-1",
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod},
		func(ctx context.Context) error { ran = true; return nil })
	if err != nil || !ran {
		t.Fatalf("Elect as the ServiceAccount = %v (ran %v)", err, ran)
	}

	kube := kubernetes.NewForConfigOrDie(sa)
	for _, ns := range []string{f.ns, "canaryd", metav1.NamespaceAll} {
		_, err := kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if !kubetest.IsForbidden(err) {
			t.Errorf("list secrets in %q as the ServiceAccount = %v, want forbidden", ns, err)
		}
	}
	if _, err := kube.CoreV1().Secrets("canaryd").Get(ctx, "canaryd", metav1.GetOptions{}); !kubetest.IsForbidden(err) {
		t.Errorf("get secret canaryd/canaryd as the ServiceAccount = %v, want forbidden", err)
	}
	// Least privilege: no deleting VirtualServices, no writing DestinationRules.
	err = f.client.Dynamic.Resource(istio.VirtualServices).Namespace(f.ns).Delete(ctx, "grpc-vs", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("admin dry-run delete: %v", err)
	}
	saClient, err := kubetest.NewClient(sa)
	if err != nil {
		t.Fatal(err)
	}
	err = saClient.Dynamic.Resource(istio.VirtualServices).Namespace(f.ns).Delete(ctx, "grpc-vs", metav1.DeleteOptions{})
	if !kubetest.IsForbidden(err) {
		t.Errorf("delete the VirtualService as the ServiceAccount = %v, want forbidden", err)
	}
}

// TestDeployRBACRefusesOthers: a user without canaryd's RBAC is refused, and
// the Router surfaces the refusal without changing anything.
func TestDeployRBACRefusesOthers(t *testing.T) {
	f := newFixture(t, nil)
	r := f.router(t, impersonate(f.env, "system:serviceaccount:other:nobody"))
	before := f.snapshot(t)
	err := r.SetWeights(context.Background(), f.doc, rollout.CanaryAt(40))
	if !kubetest.IsForbidden(err) {
		t.Fatalf("SetWeights as a user without RBAC = %v, want forbidden", err)
	}
	if got := f.snapshot(t); got[2].GetResourceVersion() != before[2].GetResourceVersion() {
		t.Error("a refused SetWeights changed the VirtualService")
	}
}
