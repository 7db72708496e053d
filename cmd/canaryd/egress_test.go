package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateEgress: a probe of 169.254.169.254 is refused by default, with and without
// --config, at the probe's position; the config's allow list decides the rest.
func TestValidateEgress(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile("../../deploy/examples/rollout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "spec.yaml")
	meta := strings.Replace(string(example), "istio-ingressgateway.istio-system:8080", "169.254.169.254:80", 1)
	if err := os.WriteFile(spec, []byte(meta), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "canaryd.yaml")
	if err := os.WriteFile(cfg, []byte("git: {url: file:///x, rollouts: \"*.yaml\"}\negress:\n  allow: [\"*.istio-system\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	line := 1 + strings.Count(meta[:strings.Index(meta, "grpcurl:")], "\n") // where the example keeps its probe
	want := fmt.Sprintf("%s:%d:14: spec.probe.grpcurl: egress refused: 169.254.169.254 is a link-local or cloud-metadata address", spec, line)
	for _, args := range [][]string{{"validate", spec}, {"validate", "--config", cfg, spec}} {
		code, out, errOut := runCmd(args...)
		if code != 1 || !strings.HasPrefix(out, want) {
			t.Errorf("%v: exit %d, stdout %q (stderr %q), want 1 and %q", args, code, out, errOut, want)
		}
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, example, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCmd("validate", "--config", cfg, good); code != 0 {
		t.Errorf("the example under allow *.istio-system: exit %d, %q; want 0", code, out)
	}
	os.WriteFile(cfg, []byte("git: {url: file:///x, rollouts: \"*.yaml\"}\negress:\n  allow: [\"10.0.0.0/8\"]\n"), 0o600)
	if code, out, _ := runCmd("validate", "--config", cfg, good); code != 1 || !strings.Contains(out, "matches no host pattern of egress.allow") {
		t.Errorf("the example under allow 10.0.0.0/8: exit %d, %q; want 1 naming egress.allow", code, out)
	}
}
