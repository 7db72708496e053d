package controller

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/canarydio/canaryd/rollout"
)

// specChanged takes a new spec into the state (Decide already holds it as d.spec). Nothing
// moves: the rollout stays at its weights, and the new spec applies from the next move.
//
//   - The step becomes the new list's step of the current weight or, when the weight is no
//     longer a step, the last step below it: the next tick moves to the next higher step.
//     A list cut below the current weight (all of it below, but 100) continues to 100,
//     gated; a spec edit never moves traffic back. To take traffic off the canary, abort.
//   - The step's bake keeps its start; the new bake applies to it. Gates the new spec drops
//     are forgotten, gates it adds must pass before the step may advance.
//   - A forward move under way lands where it was decided; the new step list counts from there.
//   - A document marked Invalidated is the last valid spec of one that no longer validates:
//     its gates keep checking and rollbacks still happen, but no step forward is taken and
//     no run starts until the spec is fixed.
//
// The change is recorded in history with what it means ("steps 0,40,100 -> 0,20,60,100: at
// 40 %, next 60"); a spec identical in all that matters records nothing.
func (d *decision) specChanged(old *rollout.Document) {
	if old == nil {
		old = d.doc
	}
	switch d.st.Phase {
	case rollout.Progressing, rollout.Paused, rollout.Overridden, rollout.Succeeded:
		if d.st.Step >= 0 || d.st.Pending == nil {
			d.st.Step = d.adopt(d.st.Weights.Canary)
		}
	}
	keep := d.spec.Gates(max(d.st.Weights.Canary, 1))
	for g := range d.st.Gates {
		if !slices.Contains(keep, g) {
			delete(d.st.Gates, g)
		}
	}
	was, is := old.Invalidated.Error(), d.doc.Invalidated.Error()
	if is != "" && is != was {
		msg := invalidatedMessage(d.doc.Invalidated)
		d.st.Message = msg
		d.event(rollout.EventInvalid, func(ev *rollout.Event) { ev.Message, ev.Reason = msg, is })
		return
	}
	what := specDiff(&old.Spec, d.spec)
	if is == "" && was != "" {
		what = strings.TrimSuffix("spec valid again; "+what, "; ")
	}
	if what == "" {
		return
	}
	msg := what + ": " + d.where()
	d.st.Message = msg
	d.event(rollout.EventSpecChanged, func(ev *rollout.Event) { ev.Message = msg })
}

// invalidatedMessage says why a rollout runs on its last valid spec.
func invalidatedMessage(ps rollout.Problems) string {
	return "spec invalid at " + ps.Summary() + "; running on the last valid spec"
}

// specDiff says what changed between two specs that matters to a running rollout, or ""
// when nothing did.
func specDiff(old, cur *rollout.Spec) string {
	var parts []string
	if !slices.Equal(old.Steps, cur.Steps) {
		parts = append(parts, fmt.Sprintf("steps %s -> %s", joinInts(old.Steps), joinInts(cur.Steps)))
	}
	if og, ng := old.Gates(1), cur.Gates(1); !slices.Equal(og, ng) {
		parts = append(parts, fmt.Sprintf("gates %s -> %s", joinOrNone(og), joinOrNone(ng)))
	}
	if len(parts) == 0 && !reflect.DeepEqual(old, cur) {
		parts = append(parts, "spec changed (steps and gates as they were)")
	}
	return strings.Join(parts, "; ")
}

// where says where the rollout stands in the new spec and what comes next.
func (d *decision) where() string {
	c := d.st.Weights.Canary
	switch d.st.Phase {
	case rollout.Progressing, rollout.Paused:
	default:
		return fmt.Sprintf("at %d %%, %s", c, d.st.Phase)
	}
	s := fmt.Sprintf("at %d %%", c)
	if k := d.st.Step; k < 0 || d.spec.Steps[k] != c {
		s += " (not a step of the new list)"
	}
	from := c
	if p := d.st.Pending; p != nil && p.Kind == rollout.Forward {
		from = p.Weights.Canary
		s += fmt.Sprintf(", the step to %d %% under way lands first", from)
	}
	if k := d.adopt(from); k >= d.last() {
		s += ", the last step"
	} else {
		s += fmt.Sprintf(", next %d", d.spec.Steps[k+1])
	}
	if d.st.Phase == rollout.Paused {
		s += " (paused)"
	}
	if len(d.doc.Invalidated) > 0 {
		s += "; running on the last valid spec"
	}
	return s
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ",")
}

func joinOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ",")
}
