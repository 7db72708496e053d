package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// callTimeout bounds each call to the cluster or the gates; commitTimeout bounds a commit
// and its push, which also waits its turn behind the other rollouts' pushes to the same
// repository (hundreds of rollouts starting at once queue there).
const (
	callTimeout   = time.Minute
	commitTimeout = 10 * time.Minute
)

type request struct {
	in   Input
	done chan error
}

// worker runs one rollout. Only its own goroutine touches its fields after run starts.
type worker struct {
	c       *Controller
	log     *slog.Logger
	cancel  context.CancelFunc
	inbox   chan request
	docs    chan *rollout.Document
	stopped chan struct{}
	loaded  atomic.Bool // set once run has loaded the state

	doc       *rollout.Document
	sched     rollout.Schedule
	st        rollout.State
	nextTick  time.Time
	nextCheck time.Time
	retryAt   time.Time
	backoff   time.Duration
}

func newWorker(c *Controller, doc *rollout.Document, cancel context.CancelFunc) *worker {
	return &worker{
		c: c, log: c.log.With("rollout", doc.Name()), cancel: cancel, doc: doc, sched: doc.Schedule(),
		inbox: make(chan request), docs: make(chan *rollout.Document, 1), stopped: make(chan struct{}),
	}
}

// setDoc hands the worker a new spec; the latest one wins. Called with c.mu held.
func (w *worker) setDoc(doc *rollout.Document) {
	select {
	case <-w.docs:
	default:
	}
	w.docs <- doc
}

func (w *worker) now() time.Time { return w.c.opts.Clock.Now() }

func (w *worker) run(ctx context.Context) error {
	defer close(w.stopped)
	if err := w.loadRetrying(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	now := w.now()
	w.nextTick = w.sched.Next(now)
	w.nextCheck = now.Add(w.doc.Spec.Interval())
	for _, in := range w.c.takeQueued(w.doc.Name()) {
		if _, err := w.feed(in); err != nil {
			return err
		}
	}
	if w.st.Phase == rollout.Idle {
		if _, err := w.feed(Start{}); err != nil {
			return err
		}
	}
	for {
		if w.st.Pending != nil && !w.now().Before(w.retryAt) {
			if err := w.perform(ctx); err != nil {
				return err
			}
			continue
		}
		if err := w.wait(ctx); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// wait blocks until the next thing to do, and does it.
func (w *worker) wait(ctx context.Context) error {
	now := w.now()
	wake := w.nextTick
	if w.checking() && w.nextCheck.Before(wake) {
		wake = w.nextCheck
	}
	if w.st.Pending != nil && w.retryAt.Before(wake) {
		wake = w.retryAt
	}
	timer := w.c.opts.Clock.NewTimer(wake.Sub(now))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return nil
	case req := <-w.inbox:
		if w.stale(req.in) {
			req.done <- nil
			return nil
		}
		refused, err := w.feed(req.in)
		if err != nil {
			req.done <- err
			return err
		}
		req.done <- refused
		return nil
	case doc := <-w.docs:
		prev := w.doc
		if doc == prev {
			return nil
		}
		old := w.doc.Spec
		w.doc = doc
		if doc.Spec.Schedule != old.Schedule || doc.Spec.TimeZone != old.TimeZone {
			w.sched = doc.Schedule()
			w.nextTick = w.sched.Next(w.now())
		}
		_, err := w.feed(SpecChanged{Old: prev})
		return err
	case <-timer.C():
	}
	now = w.now()
	if w.checking() && !now.Before(w.nextCheck) {
		w.nextCheck = now.Add(w.doc.Spec.Interval())
		if _, err := w.feed(Verdicts{Verdicts: w.check(ctx)}); err != nil {
			return err
		}
	}
	if !w.now().Before(w.nextTick) {
		at := w.nextTick
		w.nextTick = w.sched.Next(w.now()) // ticks missed while busy or down collapse into one
		if _, err := w.feed(Tick{At: at}); err != nil {
			return err
		}
	}
	return nil
}

// stale reports whether in is a report of Git that the branch head, as fetched now, no
// longer holds: the fetch that made it raced with a newer commit (often canaryd's own push),
// and the next fetch reports the head as it is. Only a report Git still stands by may
// override the rollout.
func (w *worker) stale(in Input) bool {
	g, ok := in.(Git)
	if !ok {
		return false
	}
	if obs, can := w.c.opts.Repo.(Observer); can {
		var cur rollout.GitChange
		err := w.guard("read the head", func() (err error) { cur, err = obs.Observe(w.doc); return err })
		if err != nil || cur.Weights == g.Change.Weights && cur.LatestCommit() == g.Change.LatestCommit() {
			return false
		}
		w.log.Debug("stale git change dropped", "commit", g.Change.Commit, "weight", g.Change.Weights.Canary,
			"head", cur.Weights.String(), "latest", cur.LatestCommit())
		return true
	}
	hr, can := w.c.opts.Repo.(HeadReader)
	if !can || g.Change.Own() {
		return false
	}
	var at rollout.Weights
	err := w.guard("read the head", func() (err error) { at, err = hr.WeightsAtHead(w.doc); return err })
	if err != nil || at == g.Change.Weights {
		return false
	}
	w.log.Debug("stale git change dropped", "commit", g.Change.Commit, "weight", g.Change.Weights.Canary, "head", at.String())
	return true
}

// checking reports whether the gates are due to be checked in this state.
func (w *worker) checking() bool {
	p := w.st.Phase
	return (p == rollout.Progressing || p == rollout.Paused) && w.st.Pending == nil &&
		len(w.doc.Spec.Gates(w.st.Weights.Canary)) > 0
}

func (w *worker) check(ctx context.Context) []rollout.Verdict {
	if w.c.opts.Gates == nil {
		var vs []rollout.Verdict
		for _, g := range w.doc.Spec.Gates(w.st.Weights.Canary) {
			vs = append(vs, rollout.Verdict{Gate: g, Result: rollout.Error, Time: w.now(), Reason: "this daemon has no gates configured"})
		}
		return vs
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return w.checkGuarded(ctx)
}

// feed decides on one input and records the outcome. It returns refused for an input the
// rollout's phase does not allow, and err when the outcome could not be stored: a move is
// never carried out before its intent is durable.
func (w *worker) feed(in Input) (refused, err error) {
	out, refused := Decide(w.doc, w.st, in, w.now())
	if refused != nil {
		return refused, nil
	}
	if len(out.Events) == 0 && out.Move == nil && out.State.Phase == w.st.Phase && out.State.Message == w.st.Message &&
		out.State.LastTick.Equal(w.st.LastTick) {
		w.st = out.State
		return nil, nil
	}
	if err := w.c.opts.Store.Save(out.State, out.Events...); err != nil {
		return nil, fmt.Errorf("save state: %w", err)
	}
	if out.State.Phase != w.st.Phase {
		w.log.Info("phase", "from", w.st.Phase, "to", out.State.Phase, "run", out.State.Run, "step", out.State.Step, "weight", out.State.Weights.Canary)
	}
	prev := w.st.Pending
	w.st = out.State
	if out.Move != nil && (prev == nil || !sameMove(*prev, *out.Move)) {
		// A new move starts with no backoff; a failed one retried keeps its own.
		w.retryAt = time.Time{}
		w.backoff = 0
		w.hook("intent", *out.Move)
	}
	return nil, nil
}

// sameMove reports whether b is a (possibly updated) a: the same intent retried.
func sameMove(a, b rollout.Move) bool {
	return a.Kind == b.Kind && a.Run == b.Run && a.Step == b.Step && a.Weights == b.Weights && a.Since.Equal(b.Since)
}

func (w *worker) hook(point string, m rollout.Move) {
	if h := w.c.opts.Hook; h != nil {
		h(point, m)
	}
}

// perform carries out the pending move and records its result.
func (w *worker) perform(ctx context.Context) error {
	m := *w.st.Pending
	commit, err := w.execute(ctx, m)
	if err != nil {
		w.log.Warn("move failed", "kind", m.Kind, "weight", m.Weights.Canary, "err", err)
	}
	// A failure at the longest backoff was recorded when the backoff first reached it:
	// history holds the first failure and one per backoff level, not one per try.
	quiet := err != nil && w.backoff >= w.c.opts.MaxBackoff
	if _, serr := w.feed(Applied{Move: m, Commit: commit, Err: err, Quiet: quiet}); serr != nil {
		return serr
	}
	if w.st.Pending != nil {
		w.backoff = min(max(2*w.backoff, w.c.opts.RetryBackoff), w.c.opts.MaxBackoff)
		w.retryAt = w.now().Add(w.backoff)
		return nil
	}
	w.hook("recorded", m)
	return nil
}

// execute changes Git and the cluster in the order the move's kind requires: forward moves
// commit first (Git leads), backward moves apply first (safety leads) and are re-applied on
// every retry until their commit is pushed.
func (w *worker) execute(ctx context.Context, m rollout.Move) (commit string, err error) {
	switch {
	case m.Kind == rollout.Follow:
		return m.Commit, w.apply(ctx, m)
	case m.Kind.Backward():
		applyErr := w.apply(ctx, m)
		commit, err = w.commit(ctx, m)
		return commit, errors.Join(applyErr, err)
	case m.Kind.Hold():
		return w.commit(ctx, m)
	default:
		if err := w.preflight(ctx, m); err != nil {
			return "", err
		}
		if commit, err = w.commit(ctx, m); err != nil {
			return "", err
		}
		if err := w.converge(ctx, m); err != nil {
			return commit, err
		}
		return commit, w.apply(ctx, m)
	}
}

// preflight checks the cluster before the first step that sends the canary traffic, before
// anything is committed.
func (w *worker) preflight(ctx context.Context, m rollout.Move) error {
	p, ok := w.c.opts.Router.(Preflighter)
	if !ok || w.st.Weights.Canary > 0 || m.Weights.Canary == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := w.guard("preflight", func() error { return p.Preflight(ctx, w.doc) }); err != nil {
		return fmt.Errorf("preflight before the first traffic step: %w", err)
	}
	return nil
}

func (w *worker) commit(ctx context.Context, m rollout.Move) (string, error) {
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
		Kind: m.Kind, Run: m.Run, Step: step, Steps: len(w.doc.Spec.Steps),
		Weights: m.Weights, Reason: m.Reason, Actor: m.Actor,
		Base: w.st.Weights, BaseOwn: w.st.Own,
	}
	var sha string
	err := w.guard("commit", func() (err error) { sha, err = w.c.opts.Repo.SetWeights(ctx, w.doc, c); return err })
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", m.Weights, err)
	}
	w.hook("committed", m)
	return sha, nil
}

func (w *worker) apply(ctx context.Context, m rollout.Move) error {
	if w.c.opts.Router == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := w.guard("apply", func() error { return w.c.opts.Router.SetWeights(ctx, w.doc, m.Weights) }); err != nil {
		return fmt.Errorf("apply %s: %w", m.Weights, err)
	}
	w.hook("applied", m)
	return nil
}
