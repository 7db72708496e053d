// Package authority_test checks that Git is the authority over a rollout when a person and
// canaryd write at once: canaryd's controller, Git adapter and store run in process on a
// real bare remote, real bbolt and the git CLI playing a person; what landed is read back
// with the git CLI.
package authority_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/store"
)

var (
	_ controller.Repo          = (*gitops.Repo)(nil)
	_ controller.Observer      = (*gitops.Repo)(nil)
	_ controller.HistoryReader = (*gitops.Repo)(nil)
	_ controller.Store         = (*store.DB)(nil)
)

const manifest = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: grpc-vs
  namespace: default
spec:
  hosts: ["*"]
  gateways: [grpc-gateway]
  http:
  - match:
    - port: 8080
    route:
    - destination:
        host: grpc-helloworld-py
        subset: v1
      weight: 100
    - destination:
        host: grpc-helloworld-py
        subset: v2
      weight: 0
`

const spec = `apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata: {name: demo}
spec:
  virtualService: {namespace: default, name: grpc-vs}
  host: grpc-helloworld-py
  stable: v1
  canary: v2
  manifest: deploy/rules.yaml
  steps: [40, 100]
  schedule: "@every 1s"
`

// git runs the git CLI as a person, in dir.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Pat Person", "GIT_AUTHOR_EMAIL=pat@example.com",
		"GIT_COMMITTER_NAME=Pat Person", "GIT_COMMITTER_EMAIL=pat@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

var weightLine = regexp.MustCompile(`(?m)^(\s*)weight: \d+$`)

// headWeights reads the two weights at the remote's head with the git CLI and a regexp.
func headWeights(t testing.TB, remote string) string {
	var ws []string
	for _, m := range weightLine.FindAllString(git(t, remote, "show", "main:deploy/rules.yaml"), -1) {
		ws = append(ws, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(m), "weight:")))
	}
	return strings.Join(ws, "/")
}

// TestHandEditDuringAStep pushes a person's 50/50 edit while canaryd's forward step to 40 %
// stands between its decision and its commit (a hook holds it there), and lets a fetch
// report the edit before the step goes on. Every time, the edit stands: canaryd writes no
// commit over it and the rollout ends Overridden.
func TestHandEditDuringAStep(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 50 rollouts against a real Git remote; run without -short")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed: run test/deps/git.sh")
	}
	const runs = 50
	sem := make(chan struct{}, 5)
	for i := range runs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			raceOnce(t)
		})
	}
}

func raceOnce(t *testing.T) {
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote.git")
	git(t, dir, "init", "-q", "--bare", "-b", "main", remote)
	seed := filepath.Join(dir, "seed")
	git(t, dir, "clone", "-q", remote, seed)
	git(t, seed, "checkout", "-q", "-b", "main")
	writeFile(t, filepath.Join(seed, "deploy/rules.yaml"), manifest)
	writeFile(t, filepath.Join(seed, "rollouts/demo.yaml"), spec)
	git(t, seed, "add", "-A")
	git(t, seed, "commit", "-q", "-m", "seed")
	git(t, seed, "push", "-q", "origin", "main")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	repo, err := gitops.Open(ctx, gitops.Config{URL: "file://" + remote, Dir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	db, err := store.Open(filepath.Join(dir, "canaryd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	docs, err := rollout.Parse("rollouts/demo.yaml", []byte(spec))
	if err != nil || len(docs) != 1 || len(docs[0].Problems) > 0 {
		t.Fatalf("spec: %v %v", err, docs)
	}
	doc := docs[0]
	repo.Manage(doc)

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func(point string, m rollout.Move) {
		if point == "intent" && m.Kind == rollout.Forward && m.Weights.Canary == 40 {
			once.Do(func() { close(held); <-release })
		}
	}
	ctrl := controller.New(controller.Options{Store: db, Repo: repo, Hook: hook})
	ctrl.Set([]*rollout.Document{doc})
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	defer func() { cancel(); <-done }()

	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the step to 40% never came")
	}
	person := filepath.Join(dir, "person")
	git(t, dir, "clone", "-q", remote, person)
	data, err := os.ReadFile(filepath.Join(person, "deploy/rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(person, "deploy/rules.yaml"), weightLine.ReplaceAllString(string(data), "${1}weight: 50"))
	git(t, person, "commit", "-q", "-am", "hotfix: split evenly")
	git(t, person, "push", "-q", "origin", "main")
	edit := git(t, person, "rev-parse", "HEAD")

	// A fetch sees the edit while the step is held; its report waits for the worker.
	chs, err := repo.Sync(ctx)
	if err != nil || len(chs) != 1 || chs[0].Commit != edit {
		t.Fatalf("sync = %+v, %v; want the edit %s", chs, err, edit)
	}
	observed := make(chan error, 1)
	go func() { observed <- ctrl.Observe(ctx, chs[0]) }()
	close(release)
	var st rollout.State
	for deadline := time.Now().Add(time.Minute); ; {
		var ok bool
		if st, ok, err = db.State("demo"); err == nil && ok && st.Phase == rollout.Overridden && st.Pending == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %+v, want Overridden", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-observed; err != nil {
		t.Errorf("observe: %v", err)
	}
	if head := git(t, remote, "rev-parse", "main"); head != edit {
		t.Errorf("canaryd wrote over the person's edit: head %s, edit %s\n%s", head, edit, git(t, remote, "log", "--format=%h %an %s", "-3", "main"))
	}
	if w := headWeights(t, remote); w != "50/50" {
		t.Errorf("weights at the head %s, want the person's 50/50", w)
	}
	if st.Weights != rollout.CanaryAt(50) {
		t.Errorf("state weights %s, want 50/50", st.Weights)
	}
}
