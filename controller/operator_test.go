package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

// fourSteps is specYAML with steps [0, 40, 70, 100], so that one step and --full differ.
func fourSteps(t *testing.T) *rollout.Document {
	return mustParse(t, strings.Replace(specYAML, "steps: [0, 40, 100]", "steps: [0, 40, 70, 100]", 1))
}

// opWant is what an operator action does: the phase after it, and the move it plans.
type opWant struct {
	Phase  rollout.Phase
	Move   rollout.MoveKind
	Step   int
	Canary int
}

func TestDecidePromoteAndUndoInEveryPhase(t *testing.T) {
	doc := fourSteps(t)
	refused := opWant{Phase: illegal}
	ops := []struct {
		name string
		op   Operator
	}{
		{"promote", Operator{Action: Promote, Actor: "ann"}},
		{"promote --full", Operator{Action: Promote, Actor: "ann", Full: true}},
		{"undo", Operator{Action: Undo, Actor: "ann", Reason: "latency regression"}},
	}
	running := []opWant{
		{rollout.Progressing, rollout.Promote, 2, 70},
		{rollout.Progressing, rollout.Promote, 3, 100},
		{rollout.RolledBack, rollout.Undo, -1, 0},
	}
	wants := map[rollout.Phase][]opWant{
		rollout.Idle:        {refused, refused, refused},
		rollout.Progressing: running,
		rollout.Paused:      running,
		rollout.Succeeded:   {refused, refused, {rollout.RolledBack, rollout.Undo, -1, 0}},
		rollout.RolledBack:  {refused, refused, refused},
		rollout.Overridden:  running,
		rollout.Aborted:     {refused, refused, refused},
		rollout.Invalid:     {refused, refused, refused},
	}
	for _, phase := range rollout.Phases {
		for i, o := range ops {
			t.Run(fmt.Sprintf("%s/%s", phase, o.name), func(t *testing.T) {
				st := stateIn(phase)
				if phase == rollout.Succeeded {
					st.Step = 3
				}
				out, err := Decide(doc, st, o.op, at("10:00:00"))
				w := wants[phase][i]
				if w.Phase == illegal {
					if !errors.Is(err, ErrIllegal) || out.Move != nil || len(out.Events) != 0 {
						t.Fatalf("err = %v, move %+v, events %d; want ErrIllegal and nothing changed", err, out.Move, len(out.Events))
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if out.Move == nil {
					t.Fatalf("no move; state %+v", out.State)
				}
				got := opWant{out.State.Phase, out.Move.Kind, out.Move.Step, out.Move.Weights.Canary}
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				if got.Phase != phase && !slices.Contains(Transitions[phase], got.Phase) {
					t.Errorf("%s → %s is not in the transition table", phase, got.Phase)
				}
				if out.Move.Actor != "ann" || out.Move.Reason != o.op.Reason {
					t.Errorf("move actor %q reason %q, want ann and %q", out.Move.Actor, out.Move.Reason, o.op.Reason)
				}
			})
		}
	}
}

// land decides the Applied result of st's pending move, committed as commit.
func land(t *testing.T, doc *rollout.Document, st rollout.State, commit string) Outcome {
	t.Helper()
	if st.Pending == nil {
		t.Fatalf("nothing pending in %+v", st)
	}
	out, err := Decide(doc, st, Applied{Move: *st.Pending, Commit: commit}, at("10:01:00"))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPromoteOneStepAtATimeThenUndoAndRetry(t *testing.T) {
	doc := fourSteps(t)
	st := stateIn(rollout.Progressing) // step 2/4, canary 40
	promote := Operator{Action: Promote, Actor: "ann"}
	var steps []string
	for range 2 {
		out, err := Decide(doc, st, promote, at("10:00:00"))
		if err != nil {
			t.Fatal(err)
		}
		st = land(t, doc, out.State, fmt.Sprintf("c%d", out.Move.Step)).State
		steps = append(steps, fmt.Sprintf("%s %d %d", st.Phase, st.Step, st.Weights.Canary))
	}
	want := []string{"Progressing 2 70", "Succeeded 3 100"}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Fatalf("two one-step promotions (-want +got):\n%s", diff)
	}
	if _, err := Decide(doc, st, promote, at("10:02:00")); !errors.Is(err, ErrIllegal) {
		t.Fatalf("promote after Succeeded: err = %v, want ErrIllegal", err)
	}

	out, err := Decide(doc, st, Operator{Action: Undo, Actor: "ann", Reason: "errors in the logs"}, at("10:03:00"))
	if err != nil {
		t.Fatal(err)
	}
	if !out.Move.Kind.Backward() {
		t.Errorf("an undo is not applied first: kind %s", out.Move.Kind)
	}
	done := land(t, doc, out.State, "c-undo")
	if done.State.Phase != rollout.RolledBack || done.State.Weights.Canary != 0 || done.State.Own != "c-undo" {
		t.Fatalf("after the undo lands: %s at %s, own %q", done.State.Phase, done.State.Weights, done.State.Own)
	}
	i := slices.IndexFunc(done.Events, func(e rollout.Event) bool { return e.Kind == rollout.EventRolledBack })
	if i < 0 || done.Events[i].Actor != "ann" || done.Events[i].Reason != "errors in the logs" {
		t.Fatalf("no rolled-back event with the actor and the reason: %+v", done.Events)
	}
	again, err := Decide(doc, done.State, Operator{Action: Retry, Actor: "ann"}, at("10:04:00"))
	if err != nil || again.State.Phase != rollout.Progressing || again.State.Run != st.Run+1 {
		t.Fatalf("retry after an undo: err %v, %s run %d", err, again.State.Phase, again.State.Run)
	}
}

func TestPromoteOneStepPastAPendingStep(t *testing.T) {
	doc := fourSteps(t)
	st := stateIn(rollout.Progressing)
	st.Pending = &rollout.Move{Kind: rollout.Forward, Run: 1, Step: 2, Weights: rollout.CanaryAt(70)}
	out, err := Decide(doc, st, Operator{Action: Promote, Actor: "ann"}, at("10:00:00"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Move.Step != 3 || out.Move.Weights.Canary != 100 {
		t.Errorf("promote while step 3/4 is being taken: move to step %d at %d%%, want step 3 (index) at 100%%", out.Move.Step, out.Move.Weights.Canary)
	}
}

func TestUndoAtZero(t *testing.T) {
	doc := fourSteps(t)
	st := stateIn(rollout.Progressing)
	st.Step, st.Weights = 0, rollout.CanaryAt(0)
	undo := Operator{Action: Undo, Actor: "ann", Reason: "r"}
	if _, err := Decide(doc, st, undo, at("10:00:00")); !errors.Is(err, ErrIllegal) {
		t.Fatalf("undo of a run at 0%% with nothing pending: err = %v, want ErrIllegal", err)
	}
	st.Pending = &rollout.Move{Kind: rollout.Forward, Run: 1, Step: 1, Weights: rollout.CanaryAt(40)}
	out, err := Decide(doc, st, undo, at("10:00:00"))
	if err != nil || out.Move.Kind != rollout.Undo {
		t.Fatalf("undo while the first traffic step is being taken: err %v, move %+v", err, out.Move)
	}
}
