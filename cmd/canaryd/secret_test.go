package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(full, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := readSecret("git.webhookSecretFile", full); err != nil || string(got) != "s3cret" {
		t.Errorf("full file: %q, %v; want s3cret", got, err)
	}
	for _, p := range []string{"", empty} {
		if got, err := readSecret("git.webhookSecretFile", p); err != nil || got != nil {
			t.Errorf("%q: %q, %v; want no secret", p, got, err)
		}
	}
	_, err := readSecret("git.webhookSecretFile", filepath.Join(dir, "nope"))
	if err == nil || !strings.HasPrefix(err.Error(), "git.webhookSecretFile: ") {
		t.Errorf("missing file: err = %v, want one naming the field", err)
	}
}
