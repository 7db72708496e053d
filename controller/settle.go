package controller

import (
	"fmt"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// settle runs after every tick and round of verdicts of a progressing rollout: it ends a
// post-promotion bake whose gates all pass (the rollout is Succeeded), and takes the
// progress deadline's action for a step that has not been able to decide for that long.
func (d *decision) settle() {
	if d.st.Phase != rollout.Progressing || d.st.Pending != nil || d.st.Step < 0 {
		return
	}
	var why string
	if d.st.Step == d.last() {
		if why = d.notReadyFor(d.spec.PostPromotionBake()); why == "" {
			d.succeed()
			return
		}
		d.st.Message = "post-promotion bake: " + why
	} else if why = d.notReady(); why == "" {
		return // ready: the next tick moves
	}
	d.pastDeadline(why)
}

// pastDeadline takes the progress deadline's action when the step began longer ago than
// spec.progressDeadline: with "rollback" it rolls back, with "hold" it marks the rollout
// Stuck (once, with an event) and keeps checking, so the step may still pass.
func (d *decision) pastDeadline(why string) {
	dl := d.spec.ProgressDeadline.Duration
	if dl <= 0 || d.now.Before(d.st.StepSince.Add(dl)) {
		return
	}
	reason := fmt.Sprintf("step %d/%d has not been able to decide for %s (progressDeadline %s): %s",
		d.st.Step+1, len(d.spec.Steps), d.now.Sub(d.st.StepSince).Truncate(time.Second), dl, why)
	if d.spec.OnProgressDeadline == rollout.OnProgressDeadlineRollback {
		d.rollback(rollout.Rollback, rollout.RolledBack, "", reason)
		return
	}
	if d.st.Stuck == nil {
		d.st.Stuck = &rollout.Condition{Type: rollout.ConditionStuck, Reason: reason, Since: d.now}
		d.event(rollout.EventStuck, func(ev *rollout.Event) { ev.Reason = reason })
	}
	d.st.Message = "stuck: " + reason
}
