package controller

import (
	"fmt"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// Recover derives a rollout's state from what Git says of it alone: the weights at the
// head and the newest commit with the rollout's trailers (ch.Latest). It is how a
// restarted canaryd with an empty store, and a replica that has just taken over, learn
// where every rollout stands, and how followers answer reads. It is a pure function:
//
//   - no commit with the rollout's trailers: Idle at the head's weights;
//   - the head's weights are not the ones that commit wrote: someone else changed them
//     afterwards, so the rollout is Overridden (Git wins) until it is resumed;
//   - otherwise the commit's kind says it: a rollback or undo is RolledBack, an abort Aborted, a
//     pause Paused at its step, a step, promotion, resume or retry Progressing at its step
//     (the run's last step forward is Succeeded once its post-promotion bake is over, as
//     far as the commit's time tells; a promotion at once).
//
// The current step's bake starts again at now and no gate has passed yet, so a rebuilt
// rollout is judged afresh before it moves. A rebuilt state carries a pending Follow of the
// head's weights: in apply mode the cluster is made to hold what Git holds (a step that was
// committed by a replica that died before it applied it), idempotently.
func Recover(doc *rollout.Document, ch rollout.GitChange, now time.Time) rollout.State {
	st := NewState(doc.Name(), ch.Weights)
	st.Updated, st.StepSince, st.BakeSince = now, now, now
	st.Commit, st.Own = ch.Commit, ch.LatestCommit()
	rec := ch.Latest
	if rec == nil {
		st.Message = "no commit of canaryd's in Git yet"
		return st
	}
	last := len(doc.Spec.Steps) - 1
	st.Run = rec.Run
	st.Step = max(-1, rec.Step)
	if st.Step > last || st.Step >= 0 && doc.Spec.Steps[st.Step] != rec.Weights.Canary {
		// The spec's steps changed since the commit: its step is where its weights are in
		// the steps as they are now (a step of the commit's own weight, or the one below).
		st.Step = adoptStep(doc.Spec.Steps, rec.Weights.Canary)
	}
	st.Message = fmt.Sprintf("rebuilt from Git at %.12s", rec.Commit)
	follow := &rollout.Move{Kind: rollout.Follow, Run: st.Run, Step: st.Step, Weights: ch.Weights,
		Commit: ch.Commit, Since: now, Reason: "re-assert what Git holds"}
	if ch.Commit == "" {
		follow.Commit = rec.Commit
	}
	st.Pending = follow
	if rec.Weights != ch.Weights {
		st.Phase = rollout.Overridden
		st.Step = adoptStep(doc.Spec.Steps, ch.Weights.Canary)
		follow.Step, follow.Actor, follow.Reason = st.Step, ch.Author, string(ch.Cause)
		st.Message = fmt.Sprintf("Git wins: %s set %s in %.12s (%s); resume to continue", ch.Author, ch.Weights, ch.Commit, ch.Cause)
		return st
	}
	switch rec.Kind {
	case rollout.Rollback, rollout.Undo:
		st.Phase, st.Step = rollout.RolledBack, -1
	case rollout.Abort:
		st.Phase, st.Step = rollout.Aborted, -1
	case rollout.Pause:
		st.Phase = rollout.Paused
	case rollout.Forward, rollout.Promote:
		st.Phase = rollout.Progressing
		if st.Step == last && st.Step >= 0 && ch.Weights.Canary == doc.Spec.Steps[last] && watched(doc, rec, now) {
			st.Phase = rollout.Succeeded
		}
	default: // resume, retry
		st.Phase = rollout.Progressing
	}
	follow.Step = st.Step
	return st
}

// watched reports whether the run's last step, committed by rec, has been watched for its
// post-promotion bake (a promotion has none): its commit is older than the bake.
func watched(doc *rollout.Document, rec *rollout.Record, now time.Time) bool {
	return rec.Kind == rollout.Promote || !now.Before(rec.Time.Add(doc.Spec.PostPromotionBake()))
}

// adoptStep returns the step whose weight is canary, or else the last step below it (-1
// when the first step is above it), so that the next step forward is the first one above.
func adoptStep(steps []int, canary int) int {
	k := -1
	for i, w := range steps {
		if w > canary {
			break
		}
		k = i
	}
	return k
}

// Agrees reports whether st accounts for what Git says: Git holds the weights and the
// newest commit st believes, or the commit of st's pending move (landed, not yet recorded),
// or st's pending backward move has not been committed yet while Git still holds what st
// believed before it.
func Agrees(st rollout.State, ch rollout.GitChange) bool {
	if ch.LatestCommit() == st.Own && ch.Weights == st.Weights {
		return true
	}
	p := st.Pending
	if p == nil {
		return false
	}
	if p.Commit != "" && (ch.LatestCommit() == p.Commit || ch.Commit == p.Commit) && ch.Weights == p.Weights {
		return true
	}
	return ch.Latest != nil && ch.Latest.Matches(*p) && ch.Weights == p.Weights
}
