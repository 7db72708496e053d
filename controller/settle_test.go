package controller

import (
	"fmt"
	"slices"
	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// deadlineYAML is specYAML with a 30m progress deadline and the given action.
func deadlineYAML(action string) string {
	return specYAML + "  progressDeadline: 30m\n  onProgressDeadline: " + action + "\n"
}

var inconclusive = Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Inconclusive, Reason: "no data"}}}

// TestDecideProgressDeadlineEveryPhase extends the phase × input table for a step 50
// minutes old (stateIn's) under a 30m deadline: only a Progressing rollout that cannot
// decide takes the action; every other phase and every input that decides is unchanged.
func TestDecideProgressDeadlineEveryPhase(t *testing.T) {
	for _, action := range []string{rollout.OnProgressDeadlineHold, rollout.OnProgressDeadlineRollback} {
		doc := mustParse(t, deadlineYAML(action))
		for _, phase := range rollout.Phases {
			for i, in := range inputs {
				t.Run(fmt.Sprintf("%s/%s/%s", action, phase, in.name), func(t *testing.T) {
					st := stateIn(phase)
					input := in.in
					if input == nil {
						input = gitSame(st)
					}
					out, err := Decide(doc, st, input, at("10:00:00"))
					w := want[phase][i]
					if w.phase == illegal {
						if err == nil {
							t.Fatalf("an illegal action was accepted")
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if in.name == "verdict inconclusive" && phase == rollout.Progressing {
						w.phase, w.move = rollout.Progressing, ""
						if action == rollout.OnProgressDeadlineRollback {
							w.phase, w.move = rollout.RolledBack, rollout.Rollback
						}
					}
					var move rollout.MoveKind
					if out.Move != nil {
						move = out.Move.Kind
					}
					if out.State.Phase != w.phase || move != w.move {
						t.Errorf("phase %s move %q, want %s %q (message %q)", out.State.Phase, move, w.phase, w.move, out.State.Message)
					}
					if got := out.State.Phase; got != phase && !slices.Contains(Transitions[phase], got) {
						t.Errorf("%s → %s is not in the transition table", phase, got)
					}
					stuck := out.State.Stuck != nil
					wantStuck := action == rollout.OnProgressDeadlineHold && phase == rollout.Progressing && in.name == "verdict inconclusive"
					if stuck != wantStuck {
						t.Errorf("stuck = %v (%+v), want %v", stuck, out.State.Stuck, wantStuck)
					}
				})
			}
		}
	}
}

func TestDecideStuckOnceThenClearedByTheNextStep(t *testing.T) {
	doc := mustParse(t, deadlineYAML(rollout.OnProgressDeadlineHold))
	st := stateIn(rollout.Progressing)
	out, _ := Decide(doc, st, inconclusive, at("09:39:59"))
	if out.State.Stuck != nil {
		t.Fatalf("stuck before the deadline: %+v", out.State.Stuck)
	}
	out, _ = Decide(doc, out.State, inconclusive, at("09:40:00"))
	if out.State.Stuck == nil || len(eventsOf(out, rollout.EventStuck)) != 1 {
		t.Fatalf("at the deadline: stuck %+v, events %+v", out.State.Stuck, out.Events)
	}
	out, _ = Decide(doc, out.State, inconclusive, at("09:41:00"))
	if len(eventsOf(out, rollout.EventStuck)) != 0 || out.State.Stuck == nil {
		t.Fatalf("a second stuck event, or the condition dropped: %+v", out.State)
	}
	pass := Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Pass}, {Gate: rollout.ProbeGate, Result: rollout.Pass}}}
	out, _ = Decide(doc, out.State, pass, at("09:42:00"))
	out, _ = Decide(doc, out.State, Tick{At: at("09:55:00")}, at("09:55:00"))
	if out.Move == nil {
		t.Fatalf("a stuck step whose gates pass did not advance: %q", out.State.Message)
	}
	out, _ = Decide(doc, out.State, Applied{Move: *out.Move, Commit: "c2"}, at("09:55:01"))
	if out.State.Stuck != nil {
		t.Errorf("the next step is still stuck: %+v", out.State.Stuck)
	}
}

func TestDecidePostPromotionBake(t *testing.T) {
	doc := mustParse(t, specYAML)
	st := stateIn(rollout.Progressing)
	m := rollout.Move{Kind: rollout.Forward, Run: 1, Step: 2, Weights: rollout.CanaryAt(100)}
	st.Pending = &m
	out, _ := Decide(doc, st, Applied{Move: m, Commit: "c3"}, at("10:00:00"))
	if out.State.Phase != rollout.Progressing || out.State.Step != 2 {
		t.Fatalf("at 100%%: %s step %d, want Progressing at the last step", out.State.Phase, out.State.Step)
	}
	pass := Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Pass}}}
	out, _ = Decide(doc, out.State, pass, at("10:04:59"))
	if out.State.Phase != rollout.Progressing {
		t.Fatalf("succeeded before the 5m post-promotion bake")
	}
	out, _ = Decide(doc, out.State, pass, at("10:05:00"))
	if out.State.Phase != rollout.Succeeded || len(eventsOf(out, rollout.EventSucceeded)) != 1 {
		t.Fatalf("after the bake with passing gates: %s, events %+v", out.State.Phase, out.Events)
	}

	// A promotion by an operator skips the watch; so does postPromotionBake: 0s.
	noWatch := mustParse(t, specYAML+"    postPromotionBake: 0s\n")
	out, _ = Decide(noWatch, st, Applied{Move: m, Commit: "c3"}, at("10:00:00"))
	if out.State.Phase != rollout.Succeeded {
		t.Errorf("postPromotionBake 0s: %s, want Succeeded at once", out.State.Phase)
	}
}

func eventsOf(out Outcome, kind rollout.EventKind) []rollout.Event {
	var evs []rollout.Event
	for _, e := range out.Events {
		if e.Kind == kind {
			evs = append(evs, e)
		}
	}
	return evs
}
