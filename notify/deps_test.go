package notify

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps: notify is an adapter; it imports neither the controller nor another adapter.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, other := range []string{"controller", "gitops", "store", "analysis", "istio", "server", "sandbox"} {
			if pkg == "github.com/canarydio/canaryd/"+other {
				t.Errorf("notify depends on %s", pkg)
			}
		}
	}
	if !strings.Contains(string(out), "github.com/canarydio/canaryd/rollout") {
		t.Errorf("go list output does not look right:\n%s", out)
	}
}
