package gitops

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/faultnet"
)

// TestStalledRemoteBoundsEveryCall puts a proxy that accepts and stays silent in front of
// a git:// remote: a fetch ends at its deadline, a write waiting behind it gives up at its
// own deadline with a clear error, and once the remote answers again the write lands.
func TestStalledRemoteBoundsEveryCall(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	proxy := faultnet.Start(t, serveDaemon(t, rem.root))
	url := "git://" + proxy.Addr() + "/deploy.git"
	r := openRepo(t, url, func(c *Config) { c.FetchTimeout, c.PushTimeout = 3*time.Second, 3*time.Second })
	doc := parseDoc(t, sampleSpec)
	r.Manage(doc)
	c := believe(t, r, doc, rollout.Commit{Kind: rollout.Rollback, Run: 1, Steps: 3, Weights: rollout.CanaryAt(0), Reason: "probe failed"})

	proxy.Stall()
	syncErr := make(chan error, 1)
	go func() { _, err := r.Sync(context.Background()); syncErr <- err }()
	for len(r.mu) == 0 { // wait until the fetch holds the repo
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := r.SetWeights(ctx, doc, c)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "busy") {
		t.Errorf("a write behind a stalled fetch = %v, want its own deadline with a clear reason", err)
	}
	select {
	case err := <-syncErr:
		if err == nil {
			t.Error("a fetch from a silent remote succeeded")
		}
	case <-time.After(time.Minute):
		t.Fatal("a fetch from a silent remote outlived its deadline by far")
	}
	if _, err := r.SetWeights(context.Background(), doc, c); err == nil {
		t.Error("a push to a silent remote succeeded")
	}

	proxy.Resume()
	sha, err := r.SetWeights(context.Background(), doc, c)
	if err != nil {
		t.Fatalf("the write once the remote answers again: %v", err)
	}
	if head := gitRun(t, rem.dir, "rev-parse", "main"); head != sha {
		t.Errorf("the remote's head is %s, want the rollback %s", head, sha)
	}
}
