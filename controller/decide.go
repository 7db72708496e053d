package controller

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// Transitions is the table of legal phase changes. Decide never moves a rollout along an
// edge that is not listed here (staying in a phase is always legal).
var Transitions = map[rollout.Phase][]rollout.Phase{
	rollout.Idle:        {rollout.Progressing, rollout.Overridden},
	rollout.Progressing: {rollout.Paused, rollout.Succeeded, rollout.RolledBack, rollout.Overridden, rollout.Aborted},
	rollout.Paused:      {rollout.Progressing, rollout.Succeeded, rollout.RolledBack, rollout.Overridden, rollout.Aborted},
	rollout.Succeeded:   {rollout.Overridden},
	rollout.RolledBack:  {rollout.Progressing, rollout.Overridden},
	rollout.Overridden:  {rollout.Progressing, rollout.Succeeded, rollout.Aborted},
	rollout.Aborted:     {rollout.Progressing, rollout.Overridden},
	rollout.Invalid:     {},
}

// Outcome is what Decide returns: the next state, the history events to append with it, and
// the move to carry out (also held in State.Pending until it is Applied).
type Outcome struct {
	State  rollout.State
	Events []rollout.Event
	Move   *rollout.Move
}

// NewState returns the state of a rollout canaryd has not run yet, at the given weights.
func NewState(name string, w rollout.Weights) rollout.State {
	return rollout.State{Rollout: name, Phase: rollout.Idle, Step: -1, Weights: w}
}

// Decide is the rollout's state machine: a pure function of the spec, the state, one input
// and the time. It returns ErrIllegal (and the state unchanged) for an operator action the
// phase does not allow; every other input is always accepted, possibly as a no-op.
func Decide(doc *rollout.Document, st rollout.State, in Input, now time.Time) (Outcome, error) {
	d := decision{doc: doc, spec: &doc.Spec, now: now}
	d.st = st
	d.st.Gates = maps.Clone(st.Gates)
	if st.Pending != nil {
		p := *st.Pending
		d.st.Pending = &p
	}
	if st.Superseded != nil {
		s := *st.Superseded
		d.st.Superseded = &s
	}
	if st.Phase == rollout.Invalid {
		// An invalid spec is not run; serve reports its problems.
		if op, ok := in.(Operator); ok {
			return Outcome{State: st}, fmt.Errorf("%s %q: the spec is invalid: %w", op.Action, st.Rollout, ErrIllegal)
		}
		return d.outcome(), nil
	}
	var err error
	switch in := in.(type) {
	case Start:
		if d.st.Phase == rollout.Idle {
			d.start("", "")
		}
	case Tick:
		d.tick(in.At)
	case Verdicts:
		d.verdicts(in.Verdicts)
	case Operator:
		err = d.operator(in)
	case Git:
		d.git(in.Change)
	case Applied:
		d.applied(in)
	default:
		panic(fmt.Sprintf("controller: unknown input %T", in))
	}
	if err != nil {
		return Outcome{State: st}, err
	}
	d.st.Updated = now
	return d.outcome(), nil
}

type decision struct {
	doc    *rollout.Document
	spec   *rollout.Spec
	now    time.Time
	st     rollout.State
	events []rollout.Event
	move   *rollout.Move
}

func (d *decision) outcome() Outcome {
	return Outcome{State: d.st, Events: d.events, Move: d.move}
}

func (d *decision) event(kind rollout.EventKind, f func(*rollout.Event)) {
	ev := rollout.Event{
		Time: d.now, Rollout: d.st.Rollout, Kind: kind, Run: d.st.Run, Step: d.st.Step,
		Weights: d.st.Weights, Phase: d.st.Phase, Commit: d.st.Commit,
	}
	if f != nil {
		f(&ev)
	}
	d.events = append(d.events, ev)
}

// plan asks for a move: it becomes the pending intent, recorded before it is carried out.
func (d *decision) plan(m rollout.Move) {
	m.Run, m.Since = d.st.Run, d.now
	if p := d.st.Pending; p != nil && p.Kind != rollout.Follow {
		d.st.Superseded = p // it may be in flight: its commit may still land
	}
	d.st.Pending = &m
	d.move = &m
	d.event(rollout.EventIntent, func(ev *rollout.Event) {
		ev.Weights, ev.Step, ev.Actor, ev.Reason = m.Weights, m.Step, m.Actor, m.Reason
		ev.Message = fmt.Sprintf("%s to %s", m.Kind, m.Weights)
	})
}

// start begins a new run from the weights in force; actor and reason name the operator who
// asked for it (a retry), when one did.
func (d *decision) start(actor, reason string) {
	d.st.Run++
	d.st.Phase = rollout.Progressing
	d.st.Pending, d.st.Superseded = nil, nil
	d.st.Message = fmt.Sprintf("run %d started at %s", d.st.Run, d.st.Weights)
	d.event(rollout.EventStarted, func(ev *rollout.Event) { ev.Actor = actor })
	k := d.adopt(d.st.Weights.Canary)
	switch {
	case actor != "":
		// An operator's retry: its commit records the new run in Git, so that the run
		// survives a lost store or a takeover. Its bake begins when it lands.
		d.enterStep(k)
		d.plan(rollout.Move{Kind: rollout.Retry, Step: k, Weights: d.st.Weights, Actor: actor, Reason: reason})
	case k >= 0 && d.spec.Steps[k] == d.st.Weights.Canary:
		// The run begins at a step the weights already match: the step's commit records the
		// start in Git (an audit entry, no traffic moves), and its bake begins when it lands.
		d.enterStep(-1)
		d.plan(rollout.Move{Kind: rollout.Forward, Step: k, Weights: d.st.Weights, Actor: actor})
	default:
		// Between steps, or before the first one: the next tick moves to the next step.
		d.enterStep(k)
	}
}

// adopt returns the step whose weight is canary, or else the last step below it (-1 when the
// first step is above it), so that the next step forward is the first one above canary.
func (d *decision) adopt(canary int) int { return adoptStep(d.spec.Steps, canary) }

func (d *decision) enterStep(k int) {
	d.st.Step = k
	d.st.StepSince, d.st.BakeSince = d.now, d.now
	d.st.Gates = nil
	d.st.Stuck = nil
}

func (d *decision) last() int { return len(d.spec.Steps) - 1 }

func (d *decision) tick(at time.Time) {
	if !at.After(d.st.LastTick) {
		return // a tick already acted on: never two steps for one tick
	}
	d.st.LastTick = at
	if d.st.Phase != rollout.Progressing || d.st.Pending != nil || d.st.Step >= d.last() {
		d.settle()
		return
	}
	if why := d.notReady(); why != "" {
		d.st.Message = "waiting: " + why
		d.settle()
		return
	}
	next := d.st.Step + 1
	d.plan(rollout.Move{Kind: rollout.Forward, Step: next, Weights: d.spec.WeightsAt(next)})
	d.st.Message = fmt.Sprintf("stepping to %d/%d (canary %d%%)", next+1, len(d.spec.Steps), d.spec.Steps[next])
}

// notReady says why the current step may not advance yet, or "" when it may.
func (d *decision) notReady() string { return d.notReadyFor(d.spec.Bake()) }

// notReadyFor is notReady for a step that must bake for bake.
func (d *decision) notReadyFor(bake time.Duration) string {
	if d.st.Step >= 0 {
		if until := d.st.BakeSince.Add(bake); d.now.Before(until) {
			return fmt.Sprintf("baking until %s", until.Format(time.RFC3339))
		}
	}
	for _, gate := range d.spec.Gates(d.st.Weights.Canary) {
		switch g := d.st.Gates[gate]; g.Last {
		case rollout.Pass:
		case "":
			return fmt.Sprintf("gate %s has not passed since the step began", gate)
		default:
			return fmt.Sprintf("gate %s is %s", gate, g.Last)
		}
	}
	return ""
}

func (d *decision) verdicts(vs []rollout.Verdict) {
	if d.st.Phase != rollout.Progressing && d.st.Phase != rollout.Paused {
		return
	}
	if d.st.Gates == nil {
		d.st.Gates = map[string]rollout.GateState{}
	}
	var tripped *rollout.Verdict
	for i := range vs {
		v := vs[i]
		g := d.st.Gates[v.Gate]
		g.Last = v.Result
		switch v.Result {
		case rollout.Pass:
			g.Failures = 0
		case rollout.Fail:
			g.Failures++
			d.st.BakeSince = d.now // the step must bake again, free of failures
			if g.Failures >= d.spec.FailureLimit() && tripped == nil {
				tripped = &v
			}
		case rollout.Inconclusive, rollout.Error:
			d.st.Message = fmt.Sprintf("holding: gate %s is %s: %s", v.Gate, v.Result, v.Reason)
		}
		d.st.Gates[v.Gate] = g
		d.st.LastVerdict = &v
		d.event(rollout.EventVerdict, func(ev *rollout.Event) { ev.Verdict = &v })
	}
	if tripped != nil {
		reason := fmt.Sprintf("gate %s failed %d checks in a row", tripped.Gate, d.st.Gates[tripped.Gate].Failures)
		if tripped.Reason != "" {
			reason += ": " + tripped.Reason
		}
		d.rollback(rollout.Rollback, rollout.RolledBack, "", reason)
		return
	}
	d.settle()
}

// rollback takes all traffic off the canary at once: it never waits for a tick.
func (d *decision) rollback(kind rollout.MoveKind, phase rollout.Phase, actor, reason string) {
	d.st.Phase = phase
	d.st.Message = fmt.Sprintf("%s: %s", kind, reason)
	d.plan(rollout.Move{Kind: kind, Step: -1, Weights: rollout.CanaryAt(0), Actor: actor, Reason: reason})
}

func (d *decision) operator(op Operator) error {
	illegal := func() error {
		return fmt.Errorf("%s %q in phase %s: %w", op.Action, d.st.Rollout, d.st.Phase, ErrIllegal)
	}
	phase := d.st.Phase
	active := phase == rollout.Progressing || phase == rollout.Paused || phase == rollout.Overridden
	record := func(kind rollout.EventKind) {
		d.event(kind, func(ev *rollout.Event) { ev.Actor, ev.Reason = op.Actor, op.Reason })
	}
	switch op.Action {
	case Pause:
		if phase != rollout.Progressing {
			return illegal()
		}
		if err := d.busy(op); err != nil {
			return err
		}
		d.st.Phase = rollout.Paused
		d.st.Message = "paused by " + op.Actor
		d.hold(rollout.Pause, op)
	case Resume:
		if phase != rollout.Paused && phase != rollout.Overridden {
			return illegal()
		}
		if err := d.busy(op); err != nil {
			return err
		}
		if phase == rollout.Overridden {
			d.enterStep(d.adopt(d.st.Weights.Canary))
		}
		d.st.Phase = rollout.Progressing
		d.st.Message = "resumed by " + op.Actor
		d.hold(rollout.Resume, op)
	case Promote:
		if !active || d.st.Weights.Canary == 100 && d.st.Pending == nil {
			return illegal()
		}
		record(rollout.EventPromoted)
		d.st.Phase = rollout.Progressing
		d.st.Message = "promoting at the request of " + op.Actor
		d.plan(rollout.Move{Kind: rollout.Promote, Step: d.last(), Weights: d.spec.WeightsAt(d.last()), Actor: op.Actor, Reason: op.Reason})
	case Abort:
		if !active {
			return illegal()
		}
		record(rollout.EventAborted)
		d.rollback(rollout.Abort, rollout.Aborted, op.Actor, op.Reason)
	case Retry:
		if phase != rollout.RolledBack && phase != rollout.Aborted && phase != rollout.Idle {
			return illegal()
		}
		if d.st.Pending != nil {
			return fmt.Errorf("retry %q: the %s is still being carried out: %w", d.st.Rollout, d.st.Pending.Kind, ErrIllegal)
		}
		d.start(op.Actor, op.Reason)
	default:
		return illegal()
	}
	return nil
}

// busy refuses a hold while another move is being carried out: the hold is a commit of its
// own, and one move at a time keeps Git's order the rollout's order.
func (d *decision) busy(op Operator) error {
	if p := d.st.Pending; p != nil {
		return fmt.Errorf("%s %q: a %s to %s is being carried out; try again when it lands: %w",
			op.Action, d.st.Rollout, p.Kind, p.Weights, ErrIllegal)
	}
	return nil
}

// hold plans the commit that records an operator's pause or resume in Git.
func (d *decision) hold(kind rollout.MoveKind, op Operator) {
	d.plan(rollout.Move{Kind: kind, Step: d.st.Step, Weights: d.st.Weights, Actor: op.Actor, Reason: op.Reason})
}

// git handles what Git says. Git is the log: the state must account for the head's weights
// and for the newest commit with the rollout's trailers. A commit counts as the rollout's
// own only when it is the one the state records, or the commit of its pending move
// (whichever process pushed it). Anything else — a person's edit or revert, a rewritten
// history, another canaryd's commit — overrides the rollout (Git wins), which then makes
// no move until it is resumed.
func (d *decision) git(ch rollout.GitChange) {
	if s := d.st.Superseded; s != nil && ch.Latest != nil && ch.Latest.Matches(*s) && ch.Weights == s.Weights {
		d.landed(ch.Weights, ch.Commit, ch.Latest.Commit)
		return
	}
	if Agrees(d.st, ch) {
		if p := d.st.Pending; p != nil && p.Commit == "" && ch.Latest != nil && ch.Latest.Matches(*p) {
			p.Commit = ch.Latest.Commit // the commit landed before the result was recorded
		}
		return
	}
	if ch.Cause == rollout.CauseCanaryd {
		ch.Cause = "another canaryd's commit"
	}
	d.st.Phase = rollout.Overridden
	d.st.Pending, d.st.Superseded = nil, nil
	d.st.Weights, d.st.Commit, d.st.Own = ch.Weights, ch.Commit, ch.LatestCommit()
	d.st.Step = d.adopt(ch.Weights.Canary)
	d.st.Message = fmt.Sprintf("Git wins: %s set %s in %.12s (%s); resume to continue", ch.Author, ch.Weights, ch.Commit, ch.Cause)
	d.event(rollout.EventOverridden, func(ev *rollout.Event) {
		ev.Actor, ev.Reason = ch.Author, string(ch.Cause)
		if ch.Reverts != "" {
			ev.Reason += " of " + ch.Reverts
		}
	})
	d.plan(rollout.Move{Kind: rollout.Follow, Step: -1, Weights: ch.Weights, Commit: ch.Commit, Actor: ch.Author, Reason: string(ch.Cause)})
}

func (d *decision) applied(a Applied) {
	p := d.st.Pending
	if p == nil || p.Kind != a.Move.Kind || p.Weights != a.Move.Weights || p.Run != a.Move.Run {
		// The result of a move that is no longer wanted: when it was superseded after all
		// it had committed, its commit is the base the newer move goes on from.
		if s := d.st.Superseded; s != nil && a.Commit != "" && sameMove(*s, a.Move) {
			d.landed(a.Move.Weights, a.Commit, a.Commit)
		}
		return
	}
	if a.Err != nil {
		d.failed(a)
		return
	}
	d.st.Superseded = nil
	d.st.Pending = nil
	d.st.Weights = p.Weights
	if a.Commit != "" {
		d.st.Commit = a.Commit
		if p.Kind != rollout.Follow {
			d.st.Own = a.Commit
		}
	}
	kind := rollout.EventStep
	switch p.Kind {
	case rollout.Forward, rollout.Promote, rollout.Retry:
		d.enterStep(p.Step)
		d.st.Message = fmt.Sprintf("at step %d/%d, canary %d%%", p.Step+1, len(d.spec.Steps), p.Weights.Canary)
	case rollout.Pause:
		kind = rollout.EventPaused
	case rollout.Resume:
		kind = rollout.EventResumed
	case rollout.Rollback:
		kind, d.st.Step = rollout.EventRolledBack, p.Step
	case rollout.Abort:
		kind, d.st.Step = rollout.EventAborted, p.Step
	case rollout.Follow:
		if d.st.Phase != rollout.Overridden {
			return // Git's weights re-asserted after a takeover: nothing happened
		}
		d.st.Message = fmt.Sprintf("Git wins: following %s set by %s in %.12s; resume to continue", p.Weights, p.Actor, p.Commit)
	}
	d.event(kind, func(ev *rollout.Event) { ev.Actor, ev.Reason = p.Actor, p.Reason })
	if (p.Kind == rollout.Forward || p.Kind == rollout.Promote) && p.Step == d.last() {
		if p.Kind == rollout.Forward && d.spec.PostPromotionBake() > 0 {
			d.st.Message = fmt.Sprintf("at 100%%: the gates watch canary %s for %s before it succeeds", d.spec.Canary, d.spec.PostPromotionBake())
			return
		}
		d.succeed()
	}
}

// landed accounts for the commit of a superseded move that reached Git before the newer
// move replaced it: Git holds its weights, the state says so, and the pending move (which
// expected the older head) is tried again from there at once.
func (d *decision) landed(w rollout.Weights, commit, own string) {
	d.st.Superseded = nil
	d.st.Weights, d.st.Commit, d.st.Own = w, commit, own
	if p := d.st.Pending; p != nil {
		d.move = p
	}
}

// succeed ends the run: the canary serves all traffic.
func (d *decision) succeed() {
	d.st.Phase = rollout.Succeeded
	d.st.Stuck = nil
	d.st.Message = fmt.Sprintf("succeeded: canary %s at 100%%", d.spec.Canary)
	d.event(rollout.EventSucceeded, nil)
}

func (d *decision) failed(a Applied) {
	var ext *rollout.ExternalChangeError
	if errors.As(a.Err, &ext) {
		d.git(ext.Change)
		return
	}
	p := d.st.Pending
	if !a.Quiet {
		d.event(rollout.EventMoveFailed, func(ev *rollout.Event) {
			ev.Weights, ev.Step, ev.Message = p.Weights, p.Step, a.Err.Error()
		})
	}
	d.st.Message = fmt.Sprintf("%s to %s failed: %v", p.Kind, p.Weights, a.Err)
	if p.Kind == rollout.Forward {
		d.st.Pending = nil // the next tick tries again, gated again
		return
	}
	if a.Commit != "" {
		p.Commit = a.Commit
	}
	// Backward moves, promotions and Git's weights are retried until they land.
	d.move = p
}
