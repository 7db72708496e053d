package serve_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
)

var grpcRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "grpcroutes"}

// withGRPCRoute makes a world whose rollout steps deploy/sample-gateway-api's GRPCRoute.
func withGRPCRoute(w *world) { w.grpcRoute = true }

// manifestPath is the file of the repo that holds the route the rollout steps.
func (w *world) manifestPath() string {
	if w.grpcRoute {
		return "deploy/sample-gateway-api/route.yaml"
	}
	return "deploy/sample/rules.yaml"
}

// target is the spec's lines that name what the rollout steps.
func (w *world) target() string {
	if w.grpcRoute {
		return fmt.Sprintf(`  route: {kind: GRPCRoute, namespace: %s, name: grpc-route, rule: greeter, port: 50051}
  stable: grpc-helloworld-py-v1
  canary: grpc-helloworld-py-v2
  manifest: %s`, w.ns, w.manifestPath())
	}
	return fmt.Sprintf(`  virtualService: {namespace: %s, name: grpc-vs}
  host: grpc-helloworld-py
  stable: v1
  canary: v2
  manifest: %s`, w.ns, w.manifestPath())
}

// ref is the route in the manifest, for the gitops editor's reader.
func (w *world) ref() gitops.VSRef {
	if w.grpcRoute {
		return gitops.VSRef{Kind: rollout.KindGRPCRoute, Namespace: w.ns, Name: "grpc-route", Route: "greeter",
			Stable: "grpc-helloworld-py-v1", Canary: "grpc-helloworld-py-v2", Port: 50051}
	}
	return gitops.VSRef{Namespace: w.ns, Name: "grpc-vs", Host: "grpc-helloworld-py", Stable: "v1", Canary: "v2"}
}

// backendService is the Service the gateway counts a subset's calls under: the
// VirtualService's one Service, or the GRPCRoute's backend of that version.
func (w *world) backendService(subset string) string {
	if w.grpcRoute {
		return "grpc-helloworld-py-" + subset
	}
	return ""
}

// gatewayAPIObjects is what the cluster holds beside the GRPCRoute: the Gateway and the two
// Services (as a YAML stream to append, starting with a separator).
func (w *world) gatewayAPIObjects() string {
	if !w.grpcRoute {
		return ""
	}
	var b strings.Builder
	for _, f := range []string{"services.yaml", "gateway.yaml"} {
		data, err := os.ReadFile("../../deploy/sample-gateway-api/" + f)
		if err != nil {
			w.t.Fatal(err)
		}
		b.WriteString("\n---\n" + string(data))
	}
	return b.String()
}

// grpcRouteWeights reads the GRPCRoute's weights from the API server with the dynamic
// client.
func (w *world) grpcRouteWeights() rollout.Weights {
	w.t.Helper()
	u, err := w.kclient.Dynamic.Resource(grpcRoutes).Namespace(w.ns).Get(context.Background(), "grpc-route", metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	refs, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "backendRefs")
	var wt rollout.Weights
	for _, r := range refs {
		m := r.(map[string]any)
		weight, _ := m["weight"].(int64)
		switch m["name"] {
		case "grpc-helloworld-py-v1":
			wt.Stable = int(weight)
		case "grpc-helloworld-py-v2":
			wt.Canary = int(weight)
		}
	}
	return wt
}

// TestServeGRPCRoute steps the sample's GRPCRoute 0 → 40 → 100: every canaryd commit
// changes only the two weight lines (as the git CLI shows them), and the GRPCRoute on the
// API server carries the weights Git holds at every step.
func TestServeGRPCRoute(t *testing.T) {
	w := newWorldTB(t, withGRPCRoute)
	w.serve()
	seen := map[int]bool{}
	w.eventually(90*time.Second, "Succeeded", func() (bool, string) {
		r := w.status()
		if g, c := w.gitWeights(), w.clusterWeights(); g == c && g == r.Weights {
			seen[g.Canary] = true
		}
		return r.Phase == rollout.Succeeded, string(r.Phase) + " " + r.Message
	})
	if got := w.checkAgree("at the end"); got != rollout.CanaryAt(100) {
		t.Errorf("weights at the end %s, want 0/100", got)
	}
	if !seen[40] {
		t.Errorf("never saw Git and the cluster agree at 40%%: %v", seen)
	}
	commits := w.canarydCommits()
	if len(commits) != 3 {
		t.Fatalf("%d canaryd commits, want 3:\n%s", len(commits), strings.Join(commits, "\n"))
	}
	for _, c := range commits {
		sha := strings.Fields(c)[0]
		if strings.Contains(c, "Rollout-Step: 1/3") {
			continue // the step to 0% records the start; the weights are already 100/0
		}
		w.checkOnlyWeightLines(sha)
	}
}

// checkOnlyWeightLines fails unless the commit changes exactly the two weight lines of the
// manifest, with the git CLI's own diff.
func (w *world) checkOnlyWeightLines(sha string) {
	w.t.Helper()
	files := w.git(w.remote, "show", "--format=", "--name-only", sha)
	if files != w.manifestPath() {
		w.t.Errorf("commit %.12s changes %q, want only %s", sha, files, w.manifestPath())
	}
	diff := w.git(w.remote, "show", "--format=", "--unified=0", sha)
	var changed []string
	for _, l := range strings.Split(diff, "\n") {
		if (strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-")) && !strings.HasPrefix(l, "+++") && !strings.HasPrefix(l, "---") {
			changed = append(changed, l)
		}
	}
	if len(changed) != 4 {
		w.t.Errorf("commit %.12s changes %d lines, want the two weight lines:\n%s", sha, len(changed), diff)
	}
	for _, l := range changed {
		if !strings.HasPrefix(strings.TrimSpace(l[1:]), "weight: ") {
			w.t.Errorf("commit %.12s changes a line that is no weight: %q", sha, l)
		}
	}
}

// TestServeGRPCRouteRevertOverrides reverts canaryd's 40% commit of the GRPCRoute as a
// person: Git wins, as for a VirtualService.
func TestServeGRPCRouteRevertOverrides(t *testing.T) {
	w := newWorldTB(t, withGRPCRoute)
	w.serve()
	w.eventually(60*time.Second, "step 2/3 at 40%", func() (bool, string) {
		return w.gitWeights().Canary == 40, w.gitWeights().String()
	})
	w.eventually(30*time.Second, "the GRPCRoute at 40%", func() (bool, string) {
		c := w.clusterWeights()
		return c == rollout.CanaryAt(40), c.String()
	})
	w.stopAt40(t)
}

// TestServeFQDNHosts: a VirtualService whose destinations name the host by its FQDN while
// the spec names it short steps in Git and in the cluster alike.
func TestServeFQDNHosts(t *testing.T) {
	w := newWorldTB(t, func(w *world) { w.fqdn = true })
	if !strings.Contains(w.manifest(), "host: grpc-helloworld-py."+w.ns+".svc.cluster.local") {
		t.Fatalf("the manifest names no FQDN host:\n%s", w.manifest())
	}
	w.serve()
	seen := map[int]bool{}
	w.eventually(90*time.Second, "Succeeded", func() (bool, string) {
		r := w.status()
		if g, c := w.gitWeights(), w.clusterWeights(); g == c && g == r.Weights {
			seen[g.Canary] = true
		}
		return r.Phase == rollout.Succeeded, string(r.Phase) + " " + r.Message
	})
	if got := w.checkAgree("at the end"); got != rollout.CanaryAt(100) {
		t.Errorf("weights at the end %s, want 0/100", got)
	}
	if !seen[40] {
		t.Errorf("never saw Git and the cluster agree at 40%%: %v", seen)
	}
}
