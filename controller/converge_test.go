package controller

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// laggingCluster is a Converger for a cluster that an applier (Argo CD, Flux) brings to
// Git's weights lag after canaryd asks, on the fake clock.
type laggingCluster struct {
	clk     *fakeClock
	lag     time.Duration
	mu      sync.Mutex
	carries rollout.Weights
}

func (c *laggingCluster) WaitFor(ctx context.Context, _ *rollout.Document, w rollout.Weights, deadline time.Duration) (time.Duration, error) {
	if c.weights() == w {
		return 0, nil
	}
	if c.lag > deadline {
		t := c.clk.NewTimer(deadline)
		defer t.Stop()
		select {
		case <-t.C():
			return deadline, context.DeadlineExceeded
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	t := c.clk.NewTimer(c.lag)
	defer t.Stop()
	select {
	case <-t.C():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	c.mu.Lock()
	c.carries = w
	c.mu.Unlock()
	return c.lag, nil
}

func (c *laggingCluster) weights() rollout.Weights {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.carries
}

// TestGitopsBakeStartsWhenTheClusterCarriesTheStep: in gitops mode the step's result, and
// so its bake, waits for the cluster, which lags 20s behind Git.
func TestGitopsBakeStartsWhenTheClusterCarriesTheStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock(at("09:03:00"))
		store, repo := newMemStore(), &fakeRepo{}
		cluster := &laggingCluster{clk: clk, lag: 20 * time.Second, carries: rollout.CanaryAt(0)}
		ctrl := New(Options{Store: store, Repo: repo, Gates: &fakeGates{clk: clk, result: pass}, Clock: clk, Converger: cluster})
		ctrl.Set([]*rollout.Document{mustParse(t, specYAML)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ctrl.Run(ctx) }()
		defer func() { cancel(); <-done }()

		clk.AdvanceTo(at("09:10:00"))
		if ws := repo.weights(); len(ws) == 0 || ws[len(ws)-1] != 40 {
			t.Fatalf("Git at 09:10: %v, want the 40%% commit", ws)
		}
		clk.AdvanceTo(at("09:10:19"))
		if st := store.get("demo"); st.Step != 0 || st.Weights.Canary != 0 {
			t.Fatalf("at 09:10:19 the cluster does not carry 40%% yet, but the state is at step %d, canary %d", st.Step, st.Weights.Canary)
		}
		clk.AdvanceTo(at("09:10:21"))
		st := store.get("demo")
		if st.Step != 1 || st.Weights.Canary != 40 || !st.StepSince.Equal(at("09:10:20")) {
			t.Fatalf("after the cluster converged: step %d, canary %d, since %s; want step 1 at 40%% since 09:10:20", st.Step, st.Weights.Canary, st.StepSince.Format(time.TimeOnly))
		}
	})
}

// TestGitopsClusterThatNeverConverges: a step the cluster does not carry within the
// deadline fails with that reason, and the rollout stays where the cluster is.
func TestGitopsClusterThatNeverConverges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock(at("09:03:00"))
		store, repo := newMemStore(), &fakeRepo{}
		cluster := &laggingCluster{clk: clk, lag: time.Hour, carries: rollout.CanaryAt(0)}
		ctrl := New(Options{Store: store, Repo: repo, Gates: &fakeGates{clk: clk, result: pass}, Clock: clk,
			Converger: cluster, ConvergeTimeout: time.Minute})
		ctrl.Set([]*rollout.Document{mustParse(t, specYAML)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ctrl.Run(ctx) }()
		defer func() { cancel(); <-done }()

		clk.AdvanceTo(at("09:11:30"))
		st := store.get("demo")
		if st.Weights.Canary != 0 || st.Phase != rollout.Progressing {
			t.Fatalf("state %s at %d after a cluster that never converged; want Progressing at 0", st.Phase, st.Weights.Canary)
		}
		failed := store.events("demo", rollout.EventMoveFailed)
		if len(failed) == 0 || !strings.Contains(failed[len(failed)-1].Message, "the cluster did not carry 60/40 within 1m0s") {
			t.Fatalf("move-failed events %+v, want one saying the cluster did not carry the weights", failed)
		}
	})
}
