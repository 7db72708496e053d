package main

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/canarydio/canaryd/rollout"
)

// TestLeaseNamespaceFollowsPod: a config that names no lease namespace takes the pod's
// ($POD_NAMESPACE), so an overlay that moves canaryd keeps leader election working.
func TestLeaseNamespaceFollowsPod(t *testing.T) {
	path := filepath.Join(t.TempDir(), "canaryd.yaml")
	body := "git: {url: file:///tmp/x, rollouts: \"rollouts/*.yaml\"}\nkubernetes: {mode: apply, leaderElection: {enabled: true}}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ env, want string }{{"team-x", "team-x"}, {"", "canaryd"}} {
		t.Setenv("POD_NAMESPACE", tc.env)
		cfg, err := loadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Kubernetes.LeaderElection.Namespace; got != tc.want {
			t.Errorf("POD_NAMESPACE=%q: lease namespace %q, want %q", tc.env, got, tc.want)
		}
	}
}

// TestEmptyTokensDisable: an empty API token file disables actions rather than failing
// serve; an empty Git token file means anonymous; a missing file is still an error.
func TestEmptyTokensDisable(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := readToken(empty); err != nil || tok != nil {
		t.Errorf("readToken(empty file) = %q, %v; want nil, nil", tok, err)
	}
	if _, err := readToken(filepath.Join(dir, "missing")); err == nil {
		t.Error("readToken(missing file) = nil error")
	}
	cfg := &Config{}
	cfg.Git.Auth.TokenFile = empty
	anonymousIfEmpty(cfg, discardLogger())
	if cfg.Git.Auth.TokenFile != "" {
		t.Errorf("an empty git token file stays configured: %q", cfg.Git.Auth.TokenFile)
	}
	cfg.Git.Auth.TokenFile = filepath.Join(dir, "missing")
	anonymousIfEmpty(cfg, discardLogger())
	if cfg.Git.Auth.TokenFile == "" {
		t.Error("a missing git token file was dropped; the Git adapter should report it")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestReadPeople: the tokens file maps a token's SHA-256 to a name; bad lines say where.
func TestReadPeople(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "tokens")
	sum := sha256.Sum256([]byte("alice-token"))
	os.WriteFile(good, []byte("# on-call\n"+hex.EncodeToString(sum[:])+" alice@example.com  # since 2026\n\n"), 0o600)
	people, err := readPeople(good)
	if err != nil || len(people) != 1 || people[sum] != "alice@example.com" {
		t.Fatalf("readPeople = %v, %v", people, err)
	}
	for _, tc := range []struct{ body, want string }{
		{"abc alice\n", ":1: want the SHA-256"},
		{hex.EncodeToString(sum[:]) + "\n", ":1: the token has no name"},
		{hex.EncodeToString(sum[:]) + " a\n" + hex.EncodeToString(sum[:]) + " b\n", ":2: the same token is already a's"},
	} {
		bad := filepath.Join(dir, "bad")
		os.WriteFile(bad, []byte(tc.body), 0o600)
		if _, err := readPeople(bad); err == nil || !strings.Contains(err.Error(), bad+tc.want) {
			t.Errorf("readPeople(%q) = %v, want %q", tc.body, err, tc.want)
		}
	}
}

// FuzzReadPeople: any tokens file either loads, with a name for every token, or is refused
// with its path; it never panics.
func FuzzReadPeople(f *testing.F) {
	sum := sha256.Sum256([]byte("t"))
	f.Add(hex.EncodeToString(sum[:]) + " alice\n# x\n")
	f.Add("sha256:" + hex.EncodeToString(sum[:]) + " bob # c\n")
	f.Add("zz\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body string) {
		path := filepath.Join(dir, "tokens")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		people, err := readPeople(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error without the path: %v", err)
			}
			return
		}
		for _, name := range people {
			if name == "" {
				t.Error("a token without a name")
			}
		}
	})
}

// TestEveryConfigFieldDecodes writes a value into every field of Config, as a person
// would in canaryd.yaml, and decodes it: no field's type lacks a decoder (kubernetes.qps,
// a float32, once panicked serve at start), and each value arrives.
func TestEveryConfigFieldDecodes(t *testing.T) {
	doc, fields := sampleYAML(reflect.TypeOf(Config{}), "")
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("decoding every field panicked: %v\n%s", r, data)
			}
		}()
		if err := rollout.DecodeYAML("canaryd.yaml", data, &cfg); err != nil {
			t.Fatalf("decode every field: %v\n%s", err, data)
		}
	}()
	if fields < 40 {
		t.Fatalf("only %d fields sampled: the walk missed Config's fields", fields)
	}
	if cfg.Kubernetes.QPS != 1.5 || cfg.Kubernetes.Burst != 7 || cfg.Git.URL != "x" {
		t.Errorf("decoded qps %v, burst %d, git.url %q; want 1.5, 7, x", cfg.Kubernetes.QPS, cfg.Kubernetes.Burst, cfg.Git.URL)
	}
}

// sampleYAML returns a value for a field of type t, as YAML would hold it, and how many
// leaf fields it filled.
func sampleYAML(t reflect.Type, tag string) (any, int) {
	if t == reflect.TypeOf(rollout.Duration{}) {
		return "1s", 1
	}
	switch t.Kind() {
	case reflect.Pointer:
		return sampleYAML(t.Elem(), tag)
	case reflect.Struct:
		m, n := map[string]any{}, 0
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			v, k := sampleYAML(f.Type, name)
			m[name], n = v, n+k
		}
		return m, n
	case reflect.Slice:
		v, n := sampleYAML(t.Elem(), tag)
		return []any{v}, n
	case reflect.Map:
		v, n := sampleYAML(t.Elem(), tag)
		return map[string]any{"k": v}, n
	case reflect.String:
		return "x", 1
	case reflect.Int, reflect.Int64, reflect.Int32:
		return 7, 1
	case reflect.Float32, reflect.Float64:
		return 1.5, 1
	case reflect.Bool:
		return true, 1
	}
	panic("sampleYAML: no sample for " + t.String() + " (" + tag + ")")
}

// TestMaxManifestBytes: the limit defaults to 4 MiB, takes a value in range, and names
// itself when out of it.
func TestMaxManifestBytes(t *testing.T) {
	for _, tc := range []struct {
		set  string
		want int
		err  string
	}{{"", 4 << 20, ""}, {", maxManifestBytes: 16777216", 16 << 20, ""}, {", maxManifestBytes: 10", 0, "git.maxManifestBytes"},
		{", maxManifestBytes: 100000000", 0, "git.maxManifestBytes"}} {
		path := filepath.Join(t.TempDir(), "canaryd.yaml")
		body := "git: {url: file:///tmp/x, rollouts: \"rollouts/*.yaml\"" + tc.set + "}\n"
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one naming %s", tc.set, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.set, err)
		case cfg.Git.MaxManifestBytes != tc.want:
			t.Errorf("%q: limit %d, want %d", tc.set, cfg.Git.MaxManifestBytes, tc.want)
		}
	}
}
