package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/canarydio/canaryd/test/kubetest"
)

// renderOverlay renders an overlay of deploy/canaryd that moves it to namespace, as a
// user's overlay would, and returns its YAML.
func renderOverlay(t *testing.T, namespace string) []byte {
	t.Helper()
	base, err := filepath.Abs("canaryd")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	// As docs/deploy.md says: a NamespaceTransformer that binds the ServiceAccount in the
	// new namespace too (kustomize's namespace: field leaves RoleBinding subjects behind).
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + rel + "\n" +
		"transformers:\n- |-\n  apiVersion: builtin\n  kind: NamespaceTransformer\n  metadata: {name: move, namespace: " + namespace + "}\n" +
		"  setRoleBindingSubjects: allServiceAccounts\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = 0 // the base lies outside the overlay's directory
	m, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize an overlay of deploy/canaryd: %v", err)
	}
	data, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestKustomizeOverlayAccepted: an overlay that moves deploy/canaryd to another namespace
// renders objects the API server accepts in a strict server-side dry run, all in that
// namespace, the ServiceAccount bound there (the Lease follows the pod's namespace, so
// leader election keeps working).
func TestKustomizeOverlayAccepted(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.Namespace(t)
	objs, err := kubetest.Decode(renderOverlay(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubetest.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			continue // the overlay's namespace exists already
		}
		kinds = append(kinds, o.GetKind())
		if o.GetNamespace() != ns {
			t.Errorf("%s/%s is in %q, want %s", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
		}
		if o.GetKind() == "RoleBinding" {
			subjects, _ := o.Object["subjects"].([]any)
			if len(subjects) != 1 || subjects[0].(map[string]any)["namespace"] != ns {
				t.Errorf("RoleBinding %s binds %v, want the ServiceAccount in %s", o.GetName(), subjects, ns)
			}
		}
		if err := dryRunStrict(c, o); err != nil {
			t.Errorf("dry-run %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	for _, want := range []string{"StatefulSet", "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "ConfigMap", "Service", "ServiceAccount"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("the overlay renders no %s (%v)", want, kinds)
		}
	}
}
