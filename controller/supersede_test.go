package controller

import (
	"context"

	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// abortDuringStep is a rollout at 40 % whose step to 100 % is being carried out when an
// operator aborts: the abort supersedes the step.
func abortDuringStep(t *testing.T) (*rollout.Document, rollout.State, rollout.Move) {
	t.Helper()
	doc := mustParse(t, specYAML)
	out, err := Decide(doc, stateIn(rollout.Progressing), Tick{At: at("10:00:00")}, at("10:00:00"))
	if err != nil || out.Move == nil || out.Move.Kind != rollout.Forward {
		t.Fatalf("tick: %v, move %v", err, out.Move)
	}
	step := *out.Move
	out, err = Decide(doc, out.State, Operator{Action: Abort, Actor: "op"}, at("10:00:01"))
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
