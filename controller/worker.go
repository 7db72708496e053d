package controller

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
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

// worker runs one rollout. Its own goroutine (run) decides: it reads the mailbox, runs
// Decide and saves, and never waits on the network. Moves and reads of Git go, one at a
// time and in order, to the rollout's lane goroutine; checks run in a goroutine of their
// own. Only run touches the fields below loaded after it starts.
type worker struct {
	c       *Controller
	log     *slog.Logger
	cancel  context.CancelFunc
	mail    *mailbox
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

	lane      chan laneOp     // to the lane: at most one move and one read at a time
	results   chan laneResult // from the lane, in the order of lane
	checks    chan checkResult
	moving    *inflight      // the move in the lane
	reading   bool           // a read of the head is in the lane
	readAgain bool           // Git spoke again while it was
	check     *inflightCheck // the round of checks running
	wg        sync.WaitGroup // the lane and the checks
}

// inflight is a move handed to the lane.
type inflight struct {
	m          rollout.Move
	cancel     context.CancelFunc
	superseded bool // a newer move replaced it: it was cancelled, its result only informs
}

// inflightCheck is a round of checks running beside the worker, for the step it began in.
type inflightCheck struct {
	key    checkKey
	cancel context.CancelFunc
}

// checkKey is the step a round of checks measures: verdicts count only for it.
type checkKey struct {
	run, step int
	since     time.Time
	weights   rollout.Weights
}

func keyOf(st rollout.State) checkKey {
	return checkKey{run: st.Run, step: st.Step, since: st.StepSince, weights: st.Weights}
}

type checkResult struct {
	key      checkKey
	verdicts []rollout.Verdict
}

func newWorker(c *Controller, doc *rollout.Document, cancel context.CancelFunc) *worker {
	return &worker{
		c: c, log: c.log.With("rollout", doc.Name()), cancel: cancel, doc: doc, sched: doc.Schedule(),
		mail: newMailbox(), docs: make(chan *rollout.Document, 1), stopped: make(chan struct{}),
		lane: make(chan laneOp, 2), results: make(chan laneResult, 2), checks: make(chan checkResult, 1),
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
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		w.wg.Wait()
	}()
	if err := w.loadRetrying(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.runLane(ctx)
	}()
	now := w.now()
	w.nextTick = w.sched.Next(now)
	w.nextCheck = now.Add(w.doc.Spec.Interval())
	for _, in := range w.c.takeQueued(w.doc.Name()) {
		if err := w.input(in); err != nil {
			return err
		}
	}
	if w.st.Phase == rollout.Idle {
		if _, err := w.feed(Start{}); err != nil {
			return err
		}
	}
	for {
		w.dispatch(ctx)
		if err := w.wait(ctx); err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// input decides on an input kept for the worker before it started.
func (w *worker) input(in Input) error {
	if g, ok := in.(Git); ok {
		return w.gitSaid(g.Change)
	}
	_, err := w.feed(in)
	return err
}

// wait blocks until the next thing to do, and does it.
func (w *worker) wait(ctx context.Context) error {
	now := w.now()
	wake := w.nextTick
	if w.checkDue() && w.nextCheck.Before(wake) {
		wake = w.nextCheck
	}
	if w.st.Pending != nil && w.moving == nil && w.retryAt.Before(wake) {
		wake = w.retryAt
	}
	timer := w.c.opts.Clock.NewTimer(wake.Sub(now))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-w.mail.signal:
		return w.readMail()
	case doc := <-w.docs:
		w.setSpec(doc)
		return nil
	case r := <-w.results:
		return w.finished(r)
	case r := <-w.checks:
		return w.checked(r)
	case <-timer.C():
	}
	now = w.now()
	if w.checkDue() && !now.Before(w.nextCheck) {
		w.nextCheck = now.Add(w.doc.Spec.Interval())
		w.startCheck(ctx)
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

// setSpec makes doc the rollout's spec from the next decision on.
func (w *worker) setSpec(doc *rollout.Document) {
	old := w.doc.Spec
	w.doc = doc
	if doc.Spec.Schedule != old.Schedule || doc.Spec.TimeZone != old.TimeZone {
		w.sched = doc.Schedule()
		w.nextTick = w.sched.Next(w.now())
	}
}

// readMail decides on everything in the mailbox: Git's newest word first (Git is the
// authority), then each operator's request in order, each answered once it is recorded.
func (w *worker) readMail() error {
	ops, g := w.mail.take()
	if g != nil {
		if err := w.gitSaid(*g); err != nil {
			fail(ops, err)
			return err
		}
	}
	for i, req := range ops {
		refused, err := w.feed(req.in)
		if err != nil {
			fail(ops[i:], err)
			return err
		}
		req.done <- refused
	}
	return nil
}

func fail(reqs []request, err error) {
	for _, r := range reqs {
		r.done <- err
	}
}

// gitSaid decides on a report of what Git holds. A report the state accounts for is
// decided at once. Any other may override the rollout only once the lane has read the head
// again: the fetch that made it may have raced with a newer commit, often the rollout's
// own push, and the lane reads after any move it is carrying out.
func (w *worker) gitSaid(ch rollout.GitChange) error {
	if _, can := w.c.opts.Repo.(Observer); !can || Agrees(w.st, ch) {
		_, err := w.feed(Git{Change: ch})
		return err
	}
	if w.reading {
		w.readAgain = true
		return nil
	}
	w.reading = true
	w.lane <- laneOp{read: true, doc: w.doc}
	return nil
}

// dispatch starts what is due beside the worker: it cancels a move a newer one replaced
// and a round of checks the state no longer wants, and hands the pending move to the lane
// once the lane is free and its retry time has come.
func (w *worker) dispatch(ctx context.Context) {
	if c := w.check; c != nil && c.cancel != nil && !w.checkWanted() {
		c.cancel() // aborted, rolled back, overridden: the probe's answer no longer matters
		c.cancel = nil
	}
	if mv := w.moving; mv != nil {
		if !mv.superseded && (w.st.Pending == nil || !sameMove(mv.m, *w.st.Pending)) {
			mv.superseded = true
			mv.cancel()
			w.log.Info("move superseded", "kind", mv.m.Kind, "weight", mv.m.Weights.Canary)
		}
		return // one move at a time: the next starts once this one has returned
	}
	if w.st.Pending == nil || w.now().Before(w.retryAt) {
		return
	}
	j := job{doc: w.doc, st: w.st, m: *w.st.Pending}
	mctx, cancel := context.WithCancel(ctx)
	w.moving = &inflight{m: j.m, cancel: cancel}
	w.lane <- laneOp{ctx: mctx, cancel: cancel, job: j}
}

// finished decides on what the lane reports.
func (w *worker) finished(r laneResult) error {
	if r.read {
		w.reading = false
		if r.err != nil {
			w.log.Warn("read the head", "err", r.err)
		} else if _, err := w.feed(Git{Change: r.change}); err != nil {
			return err
		}
		if w.readAgain {
			w.readAgain, w.reading = false, true
			w.lane <- laneOp{read: true, doc: w.doc}
		}
		return nil
	}
	mv := w.moving
	w.moving = nil
	if r.err != nil && !mv.superseded {
		w.log.Warn("move failed", "kind", r.m.Kind, "weight", r.m.Weights.Canary, "err", r.err)
	}
	// A failure at the longest backoff was recorded when the backoff first reached it:
	// history holds the first failure and one per backoff level, not one per try.
	quiet := r.err != nil && w.backoff >= w.c.opts.MaxBackoff
	if _, err := w.feed(Applied{Move: r.m, Commit: r.commit, Err: r.err, Quiet: quiet}); err != nil {
		return err
	}
	switch p := w.st.Pending; {
	case mv.superseded:
	case p != nil && sameMove(*p, r.m):
		w.backoff = min(max(2*w.backoff, w.c.opts.RetryBackoff), w.c.opts.MaxBackoff)
		w.retryAt = w.now().Add(jitter(w.backoff))
	case r.err == nil:
		w.hook("recorded", r.m)
	}
	return nil
}

// jitter spreads a retry over 80..120 % of d, so that many rollouts failing at once (a Git
// outage) do not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

// checkWanted reports whether the gates watch the rollout in this state.
func (w *worker) checkWanted() bool {
	p := w.st.Phase
	return (p == rollout.Progressing || p == rollout.Paused) && len(w.doc.Spec.Gates(w.st.Weights.Canary)) > 0
}

// checkDue reports whether a new round of checks may start: none is running and no move
// is being carried out.
func (w *worker) checkDue() bool {
	return w.check == nil && w.st.Pending == nil && w.checkWanted()
}

// startCheck runs a round of checks beside the worker, which goes on deciding: a probe
// that never answers delays no abort and no report of Git.
func (w *worker) startCheck(ctx context.Context) {
	j := job{doc: w.doc, st: w.st}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	c := &inflightCheck{key: keyOf(w.st), cancel: cancel}
	w.check = c
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer cancel()
		vs := w.runGates(cctx, j)
		select {
		case w.checks <- checkResult{key: c.key, verdicts: vs}:
		case <-ctx.Done():
		}
	}()
}

// checked decides on a round of verdicts, which count only for the step they measured.
func (w *worker) checked(r checkResult) error {
	w.check = nil
	if r.key != keyOf(w.st) || !w.checkWanted() {
		return nil
	}
	_, err := w.feed(Verdicts{Verdicts: r.verdicts})
	return err
}

// runGates runs the gates for j's rollout at its weights.
func (w *worker) runGates(ctx context.Context, j job) []rollout.Verdict {
	if w.c.opts.Gates == nil {
		var vs []rollout.Verdict
		for _, g := range j.doc.Spec.Gates(j.st.Weights.Canary) {
			vs = append(vs, rollout.Verdict{Gate: g, Result: rollout.Error, Time: w.now(), Reason: "this daemon has no gates configured"})
		}
		return vs
	}
	return w.checkGuarded(ctx, j)
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
