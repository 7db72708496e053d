package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarydio/canaryd/sandbox"
)

func TestDemoUsage(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "--scenario", "bogus"},
		{"demo", "extra"},
		{"demo", "--until-done=maybe"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if code, _, errOut := runCmd(args...); code != exitUsage {
				t.Errorf("exit %d (%q), want %d", code, errOut, exitUsage)
			}
		})
	}
}

// TestDemoServeConfigLoads checks that the configuration the sandbox writes for canaryd
// serve is one serve accepts, in gitops mode (no kubernetes section).
func TestDemoServeConfigLoads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "canaryd.yaml")
	if err := os.WriteFile(path, sandbox.ServeConfig(dir, "127.0.0.1:8090", "http://127.0.0.1:9090"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kubernetes != nil || cfg.Git.URL != "file://"+filepath.Join(dir, "remote.git") || cfg.Git.PollInterval.Seconds() != 1 ||
		cfg.Prometheus.Address != "http://127.0.0.1:9090" || cfg.API.TokenFile != filepath.Join(dir, "api-token") {
		t.Errorf("config %+v", cfg)
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		s     string
		width int
		want  string
	}{
		{"█████", 0, "█████"},
		{"█████", 3, "██"},
		{"abc", 10, "abc"},
		{"abc", 3, "ab"},
	}
	for _, tt := range tests {
		if got := clip(tt.s, tt.width); got != tt.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.s, tt.width, got, tt.want)
		}
	}
}
