package controller

import (
	"context"

	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// stepInFlight is a rollout at 40 % whose tick has planned the step to 100 %.
func stepInFlight(t *testing.T) (*rollout.Document, rollout.State, rollout.Move) {
	t.Helper()
	doc := mustParse(t, specYAML)
	out, err := Decide(doc, stateIn(rollout.Progressing), Tick{At: at("10:00:00")}, at("10:00:00"))
	if err != nil || out.Move == nil || out.Move.Kind != rollout.Forward {
		t.Fatalf("tick: %v, move %v", err, out.Move)
	}
	return doc, out.State, *out.Move
}

// abortDuringStep is a rollout at 40 % whose step to 100 % is being carried out when an
// operator aborts: the abort supersedes the step.
func abortDuringStep(t *testing.T) (*rollout.Document, rollout.State, rollout.Move) {
	t.Helper()
	doc, st, step := stepInFlight(t)
	out, err := Decide(doc, st, Operator{Action: Abort, Actor: "op"}, at("10:00:01"))
	if err != nil || out.Move == nil || out.Move.Kind != rollout.Abort {
		t.Fatalf("abort: %v, move %v", err, out.Move)
	}
	if s := out.State.Superseded; s == nil || !sameMove(*s, step) {
		t.Fatalf("the abort does not record the step it superseded: %+v", s)
	}
	return doc, out.State, step
}

// TestDecideSupersededStepThatLanded: the superseded step's commit reached Git before it
// was cancelled. Its result, or Git's report of it, makes its commit the abort's base; the
// rollout is not overridden by its own commit, and the abort is tried again at once.
func TestDecideSupersededStepThatLanded(t *testing.T) {
	doc, st, step := abortDuringStep(t)
	landed := &rollout.Record{Commit: "c100", Kind: rollout.Forward, Run: step.Run, Step: step.Step, Steps: 3, Weights: step.Weights}
	for name, in := range map[string]Input{
		"its result": Applied{Move: step, Commit: "c100"},
		"git's report": Applied{Move: *st.Pending, Err: &rollout.ExternalChangeError{Change: rollout.GitChange{
			Rollout: "demo", Weights: step.Weights, Commit: "c100", Cause: rollout.CauseCanaryd, Latest: landed}}},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := Decide(doc, st, in, at("10:00:02"))
			if err != nil {
				t.Fatal(err)
			}
			got := out.State
			if got.Phase != rollout.Aborted || got.Weights != step.Weights || got.Own != "c100" || got.Superseded != nil {
				t.Errorf("state %s at %s own %q superseded %v; want Aborted at %s own c100, nothing superseded",
					got.Phase, got.Weights, got.Own, got.Superseded, step.Weights)
			}
			if out.Move == nil || out.Move.Kind != rollout.Abort || got.Pending == nil {
				t.Errorf("the abort is not tried again from the landed commit: move %v", out.Move)
			}
		})
	}
}

// TestDecideSupersededStepThatDidNotLand: the cancelled step never committed; its result
// changes nothing, and the abort lands from the weights before it.
func TestDecideSupersededStepThatDidNotLand(t *testing.T) {
	doc, st, step := abortDuringStep(t)
	out, err := Decide(doc, st, Applied{Move: step, Err: context.Canceled}, at("10:00:02"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Move != nil || out.State.Weights != rollout.CanaryAt(40) || out.State.Pending == nil || out.State.Pending.Kind != rollout.Abort {
		t.Fatalf("a cancelled step's result changed the abort: move %v, state at %s pending %v", out.Move, out.State.Weights, out.State.Pending)
	}
	out, err = Decide(doc, out.State, Applied{Move: *out.State.Pending, Commit: "c0"}, at("10:00:03"))
	if err != nil {
		t.Fatal(err)
	}
	if got := out.State; got.Phase != rollout.Aborted || got.Weights != rollout.CanaryAt(0) || got.Pending != nil || got.Superseded != nil {
		t.Errorf("after the abort landed: %s at %s pending %v superseded %v", got.Phase, got.Weights, got.Pending, got.Superseded)
	}
}

// TestDecideOtherCommitStillOverrides: a commit that is not the superseded step's (a
// person's edit) still overrides, superseded or not.
func TestDecideOtherCommitStillOverrides(t *testing.T) {
	doc, st, _ := abortDuringStep(t)
	out, err := Decide(doc, st, Git{rollout.GitChange{Rollout: "demo", Weights: rollout.CanaryAt(70), Commit: "p", Author: "pat", Cause: rollout.CauseEdit}}, at("10:00:02"))
	if err != nil {
		t.Fatal(err)
	}
	if out.State.Phase != rollout.Overridden || out.State.Superseded != nil {
		t.Errorf("a person's edit during a superseded step: %s, superseded %v", out.State.Phase, out.State.Superseded)
	}
}

// TestDecidePauseSupersedesAStep: a pause while a step forward is being carried out is
// accepted and replaces the step. Should the step's commit land all the same, the pause
// holds at the landed step's weights (it never writes the old weights back).
func TestDecidePauseSupersedesAStep(t *testing.T) {
	doc, st, step := stepInFlight(t)
	out, err := Decide(doc, st, Operator{Action: Pause, Actor: "op"}, at("10:00:01"))
	if err != nil {
		t.Fatalf("pause during a step: %v", err)
	}
	if out.Move == nil || out.Move.Kind != rollout.Pause || out.Move.Weights != rollout.CanaryAt(40) || out.State.Phase != rollout.Paused {
		t.Fatalf("pause during a step: %s, move %v", out.State.Phase, out.Move)
	}
	out, err = Decide(doc, out.State, Applied{Move: step, Commit: "c100"}, at("10:00:02"))
	if err != nil {
		t.Fatal(err)
	}
	p := out.State.Pending
	if out.State.Weights != step.Weights || out.State.Step != step.Step || p == nil || p.Kind != rollout.Pause ||
		p.Weights != step.Weights || p.Step != step.Step || out.Move == nil {
		t.Errorf("after the superseded step landed: at %s step %d, pending %v, move %v; want the pause to hold at %s step %d",
			out.State.Weights, out.State.Step, p, out.Move, step.Weights, step.Step)
	}
	if _, err := Decide(doc, out.State, Operator{Action: Resume, Actor: "op"}, at("10:00:03")); err == nil {
		t.Error("a resume while the pause's commit is pending was accepted; a hold supersedes only a step forward")
	}
}

// TestDecideRetrySupersedesAReassert: after a takeover an aborted rollout re-asserts Git's
// weights in the cluster (a Follow); a retry does not wait for it (its own commit applies
// them too), while a retry during a rollback still being carried out is refused.
func TestDecideRetrySupersedesAReassert(t *testing.T) {
	doc := mustParse(t, specYAML)
	st := stateIn(rollout.Aborted)
	st.Pending = &rollout.Move{Kind: rollout.Follow, Step: -1, Weights: st.Weights, Commit: "c0"}
	out, err := Decide(doc, st, Operator{Action: Retry, Actor: "op"}, at("10:00:00"))
	if err != nil || out.Move == nil || out.Move.Kind != rollout.Retry || out.State.Phase != rollout.Progressing {
		t.Fatalf("retry during a re-assert: %v, move %v, phase %s", err, out.Move, out.State.Phase)
	}
	if out.State.Superseded != nil {
		t.Errorf("a Follow was kept as superseded: %v", out.State.Superseded)
	}
	st.Pending = &rollout.Move{Kind: rollout.Abort, Step: -1, Weights: st.Weights}
	if _, err := Decide(doc, st, Operator{Action: Retry, Actor: "op"}, at("10:00:00")); err == nil {
		t.Error("a retry while the abort is being carried out was accepted")
	}
}
