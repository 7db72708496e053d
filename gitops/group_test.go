package gitops

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// TestBatchOverBudgetSharesCommits has 40 rollouts move at once in a repo where one
// commit per rollout would rewrite more than Config.ChainBytes: 39 steps forward queued
// behind a long batch window, then a rollback that writes the batch at once. The git CLI
// is the oracle: the rollback is a commit of its own, first; the steps share fewer commits
// (one for a shared manifest; neighbouring files in a folder); git interpret-trailers reads
// every rollout's trailers exactly once, in the commit SetWeights returned for it, and
// each commit changes exactly its rollouts' files. History reads each rollout's own
// sentence from a shared commit, and a person's git revert of one shared commit shows as
// a revert of each rollout in it.
func TestBatchOverBudgetSharesCommits(t *testing.T) {
	needGit(t)
	const n = 40
	for _, lay := range layouts {
		t.Run(lay.name, func(t *testing.T) {
			rem := newRemote(t, lay.files(n))
			r := openRepo(t, rem.url, func(c *Config) { c.BatchWindow, c.ChainBytes = time.Hour, 10<<10 })
			seed := gitRun(t, rem.dir, "rev-parse", "main")
			docs := make([]*rollout.Document, n)
			for i := range n {
				docs[i] = docFor(t, i, lay.manifest(i))
			}
			shas := make([]string, n)
			var wg sync.WaitGroup
			for i := 1; i < n; i++ {
				wg.Go(func() {
					var err error
					shas[i], err = r.SetWeights(ctxT(t), docs[i], rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1,
						Steps: 3, Weights: rollout.CanaryAt(20), Base: rollout.CanaryAt(0)})
					if err != nil {
						t.Errorf("ro-%d: %v", i, err)
					}
				})
			}
			waitQueued(t, r, n-1)
			var err error
			shas[0], err = r.SetWeights(ctxT(t), docs[0], rollout.Commit{Kind: rollout.Rollback, Run: 1, Steps: 3,
				Weights: rollout.CanaryAt(0), Base: rollout.CanaryAt(0), Reason: "probe failed"})
			if err != nil {
				t.Fatal(err)
			}
			wg.Wait()

			got := strings.Fields(gitRun(t, rem.dir, "rev-list", "--reverse", "--first-parent", seed+"..main"))
			t.Logf("%d rollouts in %d commits", n, len(got))
			if len(got) < 2 || len(got) > 1+n/4 {
				t.Fatalf("%d commits for %d rollouts, want the rollback's and a few shared ones", len(got), n)
			}
			if got[0] != shas[0] {
				t.Errorf("first commit %s, want the rollback's %s", got[0], shas[0])
			}
			seen := map[string]string{} // rollout: the commit carrying its trailers
			for _, sha := range got {
				secs := gitSections(t, rem.dir, sha)
				var files []string
				for _, tr := range secs {
					name := tr[TrailerRollout]
					var i int
					if _, err := fmt.Sscanf(name, "ro-%d", &i); err != nil || i < 0 || i >= n {
						t.Fatalf("commit %s: trailers %v name no rollout", sha, tr)
					}
					if prev, dup := seen[name]; dup {
						t.Errorf("%s has trailers in %s and %s", name, prev, sha)
					}
					seen[name] = sha
					if shas[i] != sha {
						t.Errorf("%s: SetWeights returned %s, its trailers are in %s", name, shas[i], sha)
					}
					want := map[string]string{TrailerKind: "step", TrailerStep: "1/3", TrailerWeights: "v1=80,v2=20"}
					if i == 0 {
						want = map[string]string{TrailerKind: "rollback", TrailerWeights: "v1=100,v2=0", TrailerReason: "probe failed"}
					} else {
						files = append(files, lay.manifest(i))
					}
					for k, v := range want {
						if tr[k] != v {
							t.Errorf("%s in %s: %s is %q, want %q", name, sha, k, tr[k], v)
						}
					}
				}
				if sha == shas[0] {
					if len(secs) != 1 {
						t.Errorf("the rollback's commit carries %d rollouts, want 1", len(secs))
					}
					continue
				}
				slices.Sort(files)
				files = slices.Compact(files)
				changed := strings.Fields(gitRun(t, rem.dir, "diff-tree", "--no-commit-id", "--name-only", "-r", sha))
				slices.Sort(changed)
				if !slices.Equal(changed, files) {
					t.Errorf("commit %s changed %v, want its rollouts' %v", sha, changed, files)
				}
			}
			if len(seen) != n {
				t.Errorf("%d rollouts' trailers on main, want %d", len(seen), n)
			}
			gitRun(t, rem.dir, "fsck", "--strict", "--no-dangling")
			if lay.name == "one-manifest" && len(got) != 2 {
				t.Errorf("the steps of one manifest took %d commits, want 1", len(got)-1)
			}

			// History reads each rollout's own sentence from the shared commit.
			evs, err := r.History(ctxT(t), docs[7], 0)
			if err != nil || len(evs) != 1 || evs[0].Commit != shas[7] || evs[0].Message != "ro-7: step 1/3, canary v2 at 20%" {
				t.Fatalf("ro-7 history = %+v, %v; want its step in %s", evs, err, shas[7])
			}

			// A person reverts one shared commit: every rollout in it shows as reverted.
			shared := shas[n-1]
			work := personClone(t, rem.url)
			gitRun(t, work, "revert", "--no-edit", shared)
			gitRun(t, work, "push", "-q", "origin", "HEAD:main")
			revert := gitRun(t, work, "rev-parse", "HEAD")
			r.Manage(docs...)
			chs, err := r.Sync(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			reverted := 0
			for _, ch := range chs {
				if seen[ch.Rollout] != shared {
					if ch.Cause != rollout.CauseCanaryd {
						t.Errorf("%s, not in the reverted commit: %s by %s", ch.Rollout, ch.Cause, ch.Commit)
					}
					continue
				}
				reverted++
				if ch.Cause != rollout.CauseRevert || ch.Commit != revert || ch.Reverts != shared || ch.Weights != rollout.CanaryAt(0) {
					t.Errorf("%s after the revert of %s: %+v", ch.Rollout, shared, ch)
				}
			}
			if reverted < 2 {
				t.Errorf("the reverted commit held %d rollouts, want several", reverted)
			}
		})
	}
}

// gitSections reads a commit's trailers with git interpret-trailers --parse, one map per
// rollout: a Rollout trailer starts the next.
func gitSections(t *testing.T, dir, sha string) []map[string]string {
	t.Helper()
	cmd := exec.Command("bash", "-c", "git log -1 --format=%B "+sha+" | git interpret-trailers --parse")
	cmd.Dir = dir
	cmd.Env = gitEnv(filepath.Dir(dir))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("interpret-trailers of %s: %v\n%s", sha, err, out)
	}
	var secs []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if k == TrailerRollout || len(secs) == 0 {
			secs = append(secs, map[string]string{})
		}
		secs[len(secs)-1][k] = v
	}
	return secs
}
