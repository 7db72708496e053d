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
