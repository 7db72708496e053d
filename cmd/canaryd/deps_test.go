package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBinaryLinksNoTestCode: the production binary (which carries the demo) must not link
// the testing package or any package under test/.
func TestBinaryLinksNoTestCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list; run without -short")
	}
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	pkgs := strings.Fields(string(out))
	for _, pkg := range pkgs {
		if pkg == "testing" || strings.HasPrefix(pkg, "testing/") ||
			strings.HasPrefix(pkg, "github.com/canarydio/canaryd/test/") {
			t.Errorf("cmd/canaryd links %s", pkg)
		}
	}
	if !strings.Contains(string(out), "github.com/canarydio/canaryd/sandbox/promserver") {
		t.Errorf("go list output does not look right (no sandbox/promserver):\n%s", out)
	}
}
