package controller

import (
	"fmt"

	"github.com/canarydio/canaryd/rollout"
)

// promote takes the next step now, as `kubectl argo rollouts promote` does, or goes to the
// last step at once when op.Full is set. The move is a Promote: it does not wait for the
// tick, the bake or the gates of the step it leaves, and the step it lands on bakes and is
// judged as usual (a one-step promotion to the last step, like a full one, succeeds when it
// lands).
func (d *decision) promote(op Operator) {
	k := d.last()
	if !op.Full {
		k = min(d.promoteFrom()+1, d.last())
	}
	d.st.Phase = rollout.Progressing
	d.st.Message = fmt.Sprintf("promoting to step %d/%d at the request of %s", k+1, len(d.spec.Steps), op.Actor)
	d.plan(rollout.Move{Kind: rollout.Promote, Step: k, Weights: d.spec.WeightsAt(k), Actor: op.Actor, Reason: op.Reason})
}

// promoteFrom is the step a one-step promotion leaves: the step in force, or the step a
// pending step forward or promotion is already taking, so that promote always moves on.
func (d *decision) promoteFrom() int {
	k := d.st.Step
	if p := d.st.Pending; p != nil && (p.Kind == rollout.Forward || p.Kind == rollout.Promote) && p.Step > k {
		k = p.Step
	}
	return k
}

// undo is an operator's rollback: all traffic back to stable now, applied first and then
// committed (Rollout-Kind: undo) with the operator's reason and name. It is the way back
// from Succeeded, and during a run (Progressing, Paused, Overridden) it ends the run like a
// failed check would: the rollout is RolledBack, and retry starts the next run. It is
// refused where the canary has no traffic and none is on its way (Idle, RolledBack,
// Aborted, a run still at 0 %: abort stops such a run).
func (d *decision) undo(op Operator) error {
	switch d.st.Phase {
	case rollout.Succeeded, rollout.Progressing, rollout.Paused, rollout.Overridden:
	default:
		return fmt.Errorf("undo %q in phase %s: the canary has no traffic to take back: %w", d.st.Rollout, d.st.Phase, ErrIllegal)
	}
	p := d.st.Pending
	if d.st.Weights.Canary == 0 && (p == nil || p.Weights.Canary == 0) {
		return fmt.Errorf("undo %q: canary %s is at 0%% already; abort stops the run: %w", d.st.Rollout, d.spec.Canary, ErrIllegal)
	}
	d.rollback(rollout.Undo, rollout.RolledBack, op.Actor, op.Reason)
	return nil
}
