package gitops

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// TestOnReplayCountsEachReplay lets the git CLI win the race for main once (the pre-receive
// hook commits as a person while canaryd's push waits for the ref lock), then every time:
// OnReplay is called once per replay, never for the last, abandoned attempt.
func TestOnReplayCountsEachReplay(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	hook := filepath.Join(rem.dir, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte(sneakyHook), 0o755); err != nil {
		t.Fatal(err)
	}
	var replays atomic.Int64
	r := openRepo(t, rem.url, func(c *Config) {
		c.MaxAttempts, c.Backoff = 3, time.Millisecond
		c.OnReplay = func() { replays.Add(1) }
	})
	doc := parseDoc(t, sampleSpec)
	if replays.Load() != 0 {
		t.Fatalf("%d replays before any push", replays.Load())
	}
	step(t, r, doc, 1)
	if n := replays.Load(); n != 1 {
		t.Errorf("one rejected push, then landed: %d replays counted, want 1", n)
	}

	always := strings.Replace(sneakyHook, `[ -e "$marker" ] && exit 0`, "", 1)
	if err := os.WriteFile(hook, []byte(always), 0o755); err != nil {
		t.Fatal(err)
	}
	replays.Store(0)
	_, err := r.SetWeights(ctxT(t), doc, believe(t, r, doc, rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 2, Steps: 3, Weights: rollout.CanaryAt(40)}))
	if err == nil {
		t.Fatal("SetWeights succeeded against a remote that loses the race every time")
	}
	if n := replays.Load(); n != 2 {
		t.Errorf("3 attempts, all rejected: %d replays counted, want 2", n)
	}
}

// TestPushSendsWhatTheRemoteLost: a push leaves out the objects canaryd's cache has. When
// the remote no longer has one (a person force-pushed canaryd's commits away and the
// server's gc pruned them), the remote refuses the push as missing objects, and the replay
// sends everything: the step lands, and git fsck finds the remote whole.
func TestPushSendsWhatTheRemoteLost(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	seed := gitRun(t, rem.dir, "rev-parse", "main")
	var replays atomic.Int64
	r := openRepo(t, rem.url, func(c *Config) {
		c.MaxAttempts, c.Backoff = 3, time.Millisecond
		c.OnReplay = func() { replays.Add(1) }
	})
	doc := parseDoc(t, sampleSpec)
	step(t, r, doc, 1) // the manifest at 20 %: a blob the cache keeps
	step(t, r, doc, 2)
	blob := gitRun(t, rem.dir, "rev-parse", "main~1:deploy/sample/rules.yaml")
	// A person puts main back where it was, and the server prunes what nothing reaches.
	gitRun(t, rem.dir, "update-ref", "refs/heads/main", seed)
	gitRun(t, rem.dir, "reflog", "expire", "--expire=now", "--all")
	gitRun(t, rem.dir, "gc", "-q", "--prune=now")
	if _, err := gitTry(rem.dir, "cat-file", "-e", blob); err == nil {
		t.Fatalf("the remote still has blob %s after gc", blob)
	}
	if _, err := r.Sync(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sha := step(t, r, doc, 1) // the same manifest at 20 % again: the same blob
	if got := gitRun(t, rem.dir, "rev-parse", "main"); got != sha {
		t.Fatalf("main is %s, want the step's %s", got, sha)
	}
	if got := gitRun(t, rem.dir, "rev-parse", "main:deploy/sample/rules.yaml"); got != blob {
		t.Errorf("the step's manifest is blob %s, want %s (the same content as before)", got, blob)
	}
	gitRun(t, rem.dir, "fsck", "--strict", "--no-dangling")
	if n := replays.Load(); n != 1 {
		t.Errorf("%d replays, want 1: the first push (without the blob) refused, the replay whole", n)
	}
}
