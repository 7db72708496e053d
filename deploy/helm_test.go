// Package deploy_test checks the manifests canaryd ships for itself: the Helm chart
// deploy/helm/canaryd is linted and rendered with Helm's own Go packages, and what it
// renders is checked against a real kube-apiserver's schemas.
package deploy_test

import (
	"context"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canarydio/canaryd/test/golden"
	"github.com/canarydio/canaryd/test/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

const chartDir = "helm/canaryd"

// renderChart renders the chart as `helm template NAME deploy/helm/canaryd -n NS -f ...`
// would: the manifests in a stable order, NOTES.txt left out.
func renderChart(t testing.TB, release, namespace string, values map[string]any) []byte {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load %s: %v", chartDir, err)
	}
	opts := chartutil.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	vals, err := chartutil.ToRenderValues(ch, values, opts, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if strings.HasSuffix(name, ".yaml") && strings.TrimSpace(files[name]) != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out strings.Builder
	for _, name := range names {
		out.WriteString("---\n# Source: " + name + "\n" + strings.TrimSpace(files[name]) + "\n")
	}
	return []byte(out.String())
}

// TestHelmLint: `helm lint --strict` passes: no warning, no error (the only INFO is that
// the chart has no icon).
func TestHelmLint(t *testing.T) {
	l := lint.All(chartDir, nil, "canaryd", false)
	for _, m := range l.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		} else {
			t.Logf("helm lint: %s", m)
		}
	}
}

// TestHelmRendered pins what the chart renders with its defaults (go test -update).
func TestHelmRendered(t *testing.T) {
	got := renderChart(t, "canaryd", "canaryd", nil)
	golden.Check(t, filepath.Join("testdata", "helm.golden.yaml"), got)
	for _, want := range []string{"kind: StatefulSet", "kind: PodDisruptionBudget", "image: \"ghcr.io/canarydio/canaryd:v0.1.0\"",
		"volumeClaimTemplates:", "name: POD_NAMESPACE"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the chart renders no %q", want)
		}
	}
	if strings.Contains(string(got), "ClusterRole") || strings.Contains(string(got), ":latest") {
		t.Error("the chart renders a ClusterRole or a :latest image")
	}
}

// TestHelmAccepted: every object the chart renders, for a release in its own namespace
// with RBAC for two other namespaces, passes the API server's validation in a server-side
// dry run with strict field validation (an unknown or misplaced field fails it).
func TestHelmAccepted(t *testing.T) {
	env := kubetest.Start(t)
	ns, routesA, routesB := env.Namespace(t), env.Namespace(t), env.Namespace(t)
	objs, err := kubetest.Decode(renderChart(t, "canaryd", ns, map[string]any{
		"rbac":   map[string]any{"namespaces": []any{routesA, routesB}},
		"secret": map[string]any{"apiToken": "t0ken"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubetest.NewClient(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		if err := dryRunStrict(c, o); err != nil {
			t.Errorf("dry-run %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		got = append(got, o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName())
	}
	want := []string{
		"ConfigMap " + ns + "/canaryd", "PodDisruptionBudget " + ns + "/canaryd",
		"Role " + ns + "/canaryd-leader-election", "RoleBinding " + ns + "/canaryd-leader-election",
		"Role " + routesA + "/canaryd-routes", "RoleBinding " + routesA + "/canaryd-routes",
		"Role " + routesB + "/canaryd-routes", "RoleBinding " + routesB + "/canaryd-routes",
		"Secret " + ns + "/canaryd", "Service " + ns + "/canaryd", "ServiceAccount " + ns + "/canaryd",
		"StatefulSet " + ns + "/canaryd",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the chart renders\n  %v\nwant\n  %v", got, want)
	}
}

// dryRunStrict creates o in a server-side dry run, refusing unknown fields.
func dryRunStrict(c *kubetest.Client, o *unstructured.Unstructured) error {
	ri, err := c.Resource(o)
	if err != nil {
		return err
	}
	_, err = ri.Create(context.Background(), o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	return err
}
