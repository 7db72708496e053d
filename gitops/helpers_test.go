package gitops

import (
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// needGit skips under -short and fails a full run when the git CLI is missing.
func needGit(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real git processes; run without -short")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git CLI not found: run test/deps/git.sh")
	}
}

// gitEnv isolates the git CLI from the machine's configuration.
func gitEnv(home string) []string {
	return append(os.Environ(),
		"HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+filepath.Join(home, ".gitconfig"),
		"GIT_AUTHOR_NAME=Alice Person", "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME=Alice Person", "GIT_COMMITTER_EMAIL=alice@example.com",
		"GIT_TERMINAL_PROMPT=0", "LC_ALL=C",
	)
}

// gitRun runs the git CLI in dir as a person and returns its trimmed output.
func gitRun(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gitTry(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func gitTry(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(filepath.Dir(dir))
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// sampleSpec is a Rollout spec of the sample system, with steps that each change Git.
const sampleSpec = `apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata:
  name: grpc-helloworld-py
spec:
  virtualService: {namespace: default, name: grpc-vs}
  host: grpc-helloworld-py
  stable: v1
  canary: v2
  manifest: deploy/sample/rules.yaml
  steps: [20, 60, 100]
  schedule: "@every 30s"
`

// parseDoc parses one Rollout spec.
func parseDoc(t testing.TB, spec string) *rollout.Document {
	t.Helper()
	docs, err := rollout.Parse("rollout.yaml", []byte(spec))
	if err != nil || len(docs) != 1 {
		t.Fatalf("parse spec: %v", err)
	}
	return docs[0]
}

// remote is a bare repository in a temp dir, seeded with files by a person.
type remote struct {
	dir  string // the bare repository
	root string // its parent, the git daemon's and http-backend's base
	url  string // file:// URL
}

// newRemote creates a bare remote whose main branch holds files.
func newRemote(t testing.TB, files map[string]string) *remote {
	t.Helper()
	root := t.TempDir()
	r := &remote{root: root, dir: filepath.Join(root, "deploy.git")}
	r.url = "file://" + r.dir
	gitRun(t, root, "init", "-q", "--bare", "-b", "main", r.dir)
	gitRun(t, r.dir, "config", "core.logAllRefUpdates", "always")
	gitRun(t, r.dir, "config", "receive.denyNonFastForwards", "true")
	work := personClone(t, r.url)
	for name, body := range files {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitRun(t, work, "add", "-A")
	gitRun(t, work, "commit", "-q", "-m", "seed the sample system")
	gitRun(t, work, "push", "-q", "origin", "HEAD:main")
	return r
}

// personClone clones url into a fresh worktree for a person to work in.
func personClone(t testing.TB, url string) string {
	t.Helper()
	home := t.TempDir()
	work := filepath.Join(home, "work")
	gitRun(t, home, "clone", "-q", url, work)
	gitRun(t, work, "checkout", "-q", "-B", "main")
	return work
}

// sampleFiles returns the sample system's manifests.
func sampleFiles(t testing.TB) map[string]string {
	t.Helper()
	rules, err := os.ReadFile(filepath.Join("testdata", "edit", "sample-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"deploy/sample/rules.yaml": string(rules), "README.md": "deploy repo\n"}
}

// openRepo opens a Repo on url with a fresh cache.
func openRepo(t testing.TB, url string, mod func(*Config)) *Repo {
	t.Helper()
	cfg := Config{URL: url, Dir: t.TempDir(), Author: Signature{Name: "canaryd", Email: "canaryd@example.com"}}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// serveDaemon serves root over git:// with git daemon (inetd mode, one process per
// connection, push enabled) on a loopback port, and returns the address.
func serveDaemon(t testing.TB, root string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				f, err := conn.(*net.TCPConn).File()
				if err != nil {
					return
				}
				defer f.Close()
				cmd := exec.Command("git", "daemon", "--inetd", "--export-all", "--enable=receive-pack",
					"--base-path="+root, root)
				cmd.Stdin, cmd.Stdout = f, f
				cmd.Env = gitEnv(root)
				_ = cmd.Run()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// serveHTTP serves root over smart HTTP with git http-backend behind net/http/cgi,
// requiring basic auth user:pass, and returns the base URL.
func serveHTTP(t testing.TB, root, user, pass string) string {
	t.Helper()
	srv := httptest.NewServer(gitHTTPHandler(t, root, user, pass))
	t.Cleanup(srv.Close)
	return srv.URL
}

// serveHTTPS is serveHTTP over TLS with a throwaway certificate; it also returns a PEM
// file holding that certificate, to trust as a CA bundle.
func serveHTTPS(t testing.TB, root, user, pass string) (url, caFile string) {
	t.Helper()
	srv := httptest.NewTLSServer(gitHTTPHandler(t, root, user, pass))
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv.URL, writeFile(t, t.TempDir(), "ca.pem", string(ca))
}

func gitHTTPHandler(t testing.TB, root, user, pass string) http.Handler {
	execPath := gitRun(t, root, "--exec-path")
	backend := &cgi.Handler{
		Path:   filepath.Join(execPath, "git-http-backend"),
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=" + user},
		Stderr: io.Discard, // receive-pack's "cannot lock ref" lines of lost races
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	})
}

// writeFile writes a file and returns its path.
func writeFile(t testing.TB, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
