package gitops

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// manyVS returns a manifest with n VirtualServices vs-0..vs-n-1, all at 100/0.
func manyVS(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs-%d
  namespace: default
spec:
  hosts: ["svc-%d"]
  http:
  - route:
    - destination:
        host: svc-%d
        subset: v1
      weight: 100
    - destination:
        host: svc-%d
        subset: v2
      weight: 0
`, i, i, i, i)
	}
	return b.String()
}

func specFor(i int) string {
	return fmt.Sprintf(`apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata: {name: ro-%d}
spec:
  virtualService: {namespace: default, name: vs-%d}
  host: svc-%d
  stable: v1
  canary: v2
  manifest: deploy/vs.yaml
  steps: [20, 60, 100]
  schedule: "@every 30s"
`, i, i, i)
}

// TestConcurrentWriters has 10 canaryd writers (each its own process-like Repo and cache,
// two steps each) and 10 git CLI processes push to one remote at once, over each transport.
// Every commit must land, none be lost, none be forced.
func TestConcurrentWriters(t *testing.T) {
	needGit(t)
	for _, transport := range []string{"file", "git", "http"} {
		t.Run(transport, func(t *testing.T) {
			const writers = 10
			rem := newRemote(t, map[string]string{"deploy/vs.yaml": manyVS(writers)})
			url, cliURL := rem.url, rem.url
			var mod func(*Config)
			switch transport {
			case "git":
				url = "git://" + serveDaemon(t, rem.root) + "/deploy.git"
				cliURL = url
			case "http":
				base := serveHTTP(t, rem.root, "canaryd", "s3cret-token")
				tok := writeFile(t, t.TempDir(), "token", "s3cret-token\n")
				url = base + "/deploy.git"
				cliURL = strings.Replace(base, "http://", "http://canaryd:s3cret-token@", 1) + "/deploy.git"
				mod = func(c *Config) { c.Auth = Auth{TokenFile: tok, Username: "canaryd"} }
			}
			repos := make([]*Repo, writers)
			works := make([]string, writers)
			for i := range writers {
				repos[i] = openRepo(t, url, func(c *Config) {
					c.MaxAttempts, c.Backoff = 200, 5*time.Millisecond
					if mod != nil {
						mod(c)
					}
				})
				works[i] = personClone(t, cliURL)
				writeFile(t, works[i], fmt.Sprintf("person-%d.txt", i), "hello\n")
				gitRun(t, works[i], "add", "-A")
				gitRun(t, works[i], "commit", "-q", "-m", fmt.Sprintf("person %d", i))
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var landed []string
			record := func(sha string) { mu.Lock(); landed = append(landed, sha); mu.Unlock() }
			errs := make(chan error, 2*writers)
			for i := range writers {
				wg.Go(func() { canarydWriter(t, repos[i], i, record, errs) })
				wg.Go(func() { personWriter(t, works[i], i, record, errs) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			checkNothingLost(t, rem.dir, landed, 1+3*writers)
			final := gitRun(t, rem.dir, "show", "main:deploy/vs.yaml")
			for i := range writers {
				ref := VSRef{Namespace: "default", Name: fmt.Sprintf("vs-%d", i), Stable: "v1", Canary: "v2"}
				if w, err := ReadWeights([]byte(final), ref); err != nil || w != rollout.CanaryAt(60) {
					t.Errorf("vs-%d at the head = %v, %v; want 40/60", i, w, err)
				}
			}
		})
	}
}

// canarydWriter takes two steps of rollout ro-i.
func canarydWriter(t *testing.T, r *Repo, i int, record func(string), errs chan<- error) {
	doc := parseDoc(t, specFor(i))
	base, own := rollout.CanaryAt(0), "" // what this writer believes: the seed, no commit of its own
	for k := 1; k <= 2; k++ {
		c := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: k, Steps: 3, Weights: doc.Spec.WeightsAt(k - 1),
			Base: base, BaseOwn: own}
		sha, err := r.SetWeights(ctxT(t), doc, c)
		if err != nil {
			errs <- fmt.Errorf("writer %d step %d: %w", i, k, err)
			return
		}
		record(sha)
		base, own = c.Weights, sha
	}
}

// personWriter pushes a person's commit from work with the git CLI, pulling with rebase
// until the push lands, as people do.
func personWriter(t *testing.T, work string, i int, record func(string), errs chan<- error) {
	script := `for i in $(seq 1 200); do git push -q origin HEAD:main 2>/dev/null && exit 0; git pull -q --rebase origin main || exit 1; done; exit 1`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = work
	cmd.Env = gitEnv(filepath.Dir(work))
	if out, err := cmd.CombinedOutput(); err != nil {
		errs <- fmt.Errorf("person %d: %v\n%s", i, err, out)
		return
	}
	sha, err := gitTry(work, "rev-parse", "HEAD")
	if err != nil {
		errs <- err
		return
	}
	record(sha)
}

// checkNothingLost checks that every landed commit is on main, the history is linear with
// the expected number of commits, and every update of main in the remote's reflog was a
// fast-forward.
func checkNothingLost(t *testing.T, dir string, landed []string, commits int) {
	t.Helper()
	for _, sha := range landed {
		if _, err := gitTry(dir, "merge-base", "--is-ancestor", sha, "main"); err != nil {
			t.Errorf("commit %s was lost", sha)
		}
	}
	if n := len(strings.Fields(gitRun(t, dir, "rev-list", "main"))); n != commits {
		t.Errorf("main has %d commits, want %d", n, commits)
	}
	if merges := gitRun(t, dir, "rev-list", "--merges", "main"); merges != "" {
		t.Errorf("history is not linear: %s", merges)
	}
	updates := strings.Fields(gitRun(t, dir, "reflog", "show", "--format=%H", "refs/heads/main"))
	if len(updates) < len(landed) {
		t.Errorf("reflog has %d updates, want at least %d", len(updates), len(landed))
	}
	for i := 0; i+1 < len(updates); i++ {
		if _, err := gitTry(dir, "merge-base", "--is-ancestor", updates[i+1], updates[i]); err != nil {
			t.Errorf("main moved from %s to %s without a fast-forward", updates[i+1], updates[i])
		}
	}
	if out, err := gitTry(dir, "fsck", "--strict", "--no-progress", "--no-dangling"); err != nil || out != "" {
		t.Errorf("git fsck --strict: %v\n%s", err, out)
	}
}
