package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidate(t *testing.T) {
	code, out, errOut := runCmd("validate", "../../deploy/examples/rollout.yaml")
	if code != 0 || out != "" {
		t.Fatalf("the example: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCmd("validate", "testdata/bad.yaml")
	want := []string{
		"testdata/bad.yaml:9:11: spec.canary: must differ from stable",
		"testdata/bad.yaml:11:14: spec.steps[1]: 140 is outside 0..100",
		"testdata/bad.yaml:12:3: spec.stpes: unknown field \"stpes\"",
		"testdata/bad.yaml:13:13: spec.schedule:",
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != len(want) {
		t.Fatalf("bad.yaml: exit %d, %d lines, want exit 1 and %d lines:\n%s", code, len(lines), len(want), out)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
	if code, _, errOut := runCmd("validate"); code != 2 || !strings.Contains(errOut, "requires at least 1 arg") {
		t.Errorf("no files: exit %d (%q), want 2", code, errOut)
	}
	if code, _, _ := runCmd("validate", "--frob", "x"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code, _, errOut := runCmd("validate", "testdata/missing.yaml"); code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("missing file: exit %d (%q), want 1 naming it", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd("version")
	if code != 0 || !strings.HasPrefix(out, "canaryd ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "canaryd.yaml")
	os.WriteFile(cfg, []byte("dataDir: x\ngit: {ulr: y}\n"), 0o600)
	code, _, errOut := runCmd("serve", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, cfg+":2:7: git.ulr: unknown field") {
		t.Fatalf("bad config: exit %d, %q", code, errOut)
	}
	os.WriteFile(cfg, []byte("listen: nope\ngit: {url: file:///x, rollouts: 'r/*.yaml'}\nkubernetes: {mode: yolo}\n"), 0o600)
	code, _, errOut = runCmd("serve", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "kubernetes.mode: must be apply or gitops") || !strings.Contains(errOut, `listen: "nope" is not HOST:PORT`) {
		t.Fatalf("bad values: exit %d, %q", code, errOut)
	}
	if code, _, _ := runCmd("serve"); code != 2 {
		t.Errorf("serve without --config: exit %d, want 2", code)
	}
}

// TestUnknownCommand: a usage error exits 2, as every other usage error does.
func TestUnknownCommand(t *testing.T) {
	code, _, errOut := runCmd("frob")
	if code != 2 || !strings.Contains(errOut, `unknown command "frob"`) {
		t.Errorf("unknown command: exit %d, %q; want 2", code, errOut)
	}
}
