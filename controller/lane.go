package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/canarydio/canaryd/pace"
	"github.com/canarydio/canaryd/rollout"
)

// job is a move, or a round of checks, with what it needs from the moment the worker
// handed it over: the spec and the state it was decided on. The worker goes on deciding
// meanwhile, so a job never reads the worker's own fields.
type job struct {
	doc *rollout.Document
	st  rollout.State
	m   rollout.Move
}

// laneOp is one thing for the lane to do: carry out a move (within ctx, cancelled when a
// newer move supersedes it), or read what Git holds for the rollout at the head.
type laneOp struct {
	read   bool
	doc    *rollout.Document
	ctx    context.Context
	cancel context.CancelFunc
	job    job
}

// laneResult is what the lane did: a move's commit and error, or the head as read.
type laneResult struct {
	read   bool
	m      rollout.Move
	commit string
	err    error
	change rollout.GitChange
}

// runLane carries out the rollout's moves and reads of Git one at a time, in the order
// they were handed over, so that a read made after a move sees the move's commit.
func (w *worker) runLane(ctx context.Context) {
	for {
		var op laneOp
		select {
		case <-ctx.Done():
			return
		case op = <-w.lane:
		}
		var r laneResult
		if op.read {
			r.read = true
			obs := w.c.opts.Repo.(Observer)
			r.err = w.guard("read the head", func() (err error) { r.change, err = obs.Observe(op.doc); return err })
		} else {
			r.m = op.job.m
			r.commit, r.err = w.execute(op.ctx, op.job)
			op.cancel()
		}
		select {
		case w.results <- r:
		case <-ctx.Done():
			return
		}
	}
}

// execute changes Git and the cluster in the order the move's kind requires: forward moves
// commit first (Git leads); backward moves apply and commit at once (safety leads: the
// cluster never waits for a push, nor the push for the API server's rate limit, so a mass
// rollback is in Git in a second or two, not after the last of a thousand rate-limited
// updates), and are re-applied on every retry until their commit is pushed.
func (w *worker) execute(ctx context.Context, j job) (commit string, err error) {
	m := j.m
	switch {
	case m.Kind == rollout.Follow:
		return m.Commit, w.apply(ctx, j)
	case m.Kind.Backward():
		applied := make(chan error, 1)
		go func() { applied <- w.apply(ctx, j) }()
		commit, err = w.commit(ctx, j)
		return commit, errors.Join(<-applied, err)
	case m.Kind.Hold():
		// A hold moves nothing, yet it re-asserts Git's weights in the cluster: a step it
		// superseded may have committed without reaching the cluster.
		if commit, err = w.commit(ctx, j); err != nil {
			return "", err
		}
		return commit, w.apply(ctx, j)
	default:
		if err := w.preflight(ctx, j); err != nil {
			return "", err
		}
		if commit, err = w.commit(ctx, j); err != nil {
			return "", err
		}
		if err := w.converge(ctx, j); err != nil {
			return commit, err
		}
		return commit, w.apply(ctx, j)
	}
}

// preflight checks the cluster before the first step that sends the canary traffic, before
// anything is committed.
func (w *worker) preflight(ctx context.Context, j job) error {
	p, ok := w.c.opts.Router.(Preflighter)
	if !ok || j.st.Weights.Canary > 0 || j.m.Weights.Canary == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := w.guard("preflight", func() error { return p.Preflight(ctx, j.doc) }); err != nil {
		return fmt.Errorf("preflight before the first traffic step: %w", err)
	}
	return nil
}

// commit writes the move to Git, expecting the head to hold what the state it was decided
// on accounts for.
func (w *worker) commit(ctx context.Context, j job) (string, error) {
	m := j.m
	if m.Commit != "" {
		return m.Commit, nil
	}
	step := 0
	if m.Step >= 0 {
		step = m.Step + 1
	}
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	c := rollout.Commit{
		Kind: m.Kind, Run: m.Run, Step: step, Steps: len(j.doc.Spec.Steps),
		Weights: m.Weights, Reason: m.Reason, Actor: m.Actor,
		Base: j.st.Weights, BaseOwn: j.st.Own,
	}
	var sha string
	err := w.guard("commit", func() (err error) { sha, err = w.c.opts.Repo.SetWeights(ctx, j.doc, c); return err })
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", m.Weights, err)
	}
	w.hook("committed", m)
	return sha, nil
}

func (w *worker) apply(ctx context.Context, j job) error {
	if w.c.opts.Router == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := w.c.applies.acquire(ctx, j.m.Kind.Backward()); err != nil {
		return fmt.Errorf("apply %s: waiting for a turn to write to the cluster: %w", j.m.Weights, err)
	}
	defer w.c.applies.release()
	if j.m.Kind.Backward() {
		ctx = pace.Backward(ctx) // its requests may use the part of the rate limit steps leave
	}
	if err := w.guard("apply", func() error { return w.c.opts.Router.SetWeights(ctx, j.doc, j.m.Weights) }); err != nil {
		return fmt.Errorf("apply %s: %w", j.m.Weights, err)
	}
	w.hook("applied", j.m)
	return nil
}
