package controller

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyArrows keeps the house's arrows honest: the domain and the controller never
// depend on an adapter's library.
func TestDependencyArrows(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list; run without -short")
	}
	out, err := exec.Command("go", "list", "-deps", "../rollout/...", "../controller/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"github.com/go-git/", "go.etcd.io/bbolt", "k8s.io/", "istio.io/", "google.golang.org/grpc",
		"github.com/canarydio/canaryd/gitops", "github.com/canarydio/canaryd/store", "github.com/canarydio/canaryd/analysis",
		"github.com/canarydio/canaryd/istio", "sigs.k8s.io/", "github.com/canarydio/canaryd/gatewayapi", "github.com/canarydio/canaryd/notify"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("rollout/controller depend on %s", pkg)
			}
		}
	}
	if !strings.Contains(string(out), "github.com/robfig/cron/v3") {
		t.Errorf("go list output does not look right:\n%s", out)
	}
}
