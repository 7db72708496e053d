package controller

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// inputs are one representative of every kind of input, for a state that is at step 1 of
// [0, 40, 100] (canary 40), baked, with every gate one failure from the limit of 2.
var inputs = []struct {
	name string
	in   Input
}{
	{"start", Start{}},
	{"tick", Tick{At: at("10:00:00")}},
	{"verdict pass", Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Pass}}}},
	{"verdict fail", Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Fail, Reason: "0.9 < 0.99"}}}},
	{"verdict inconclusive", Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Inconclusive, Reason: "no data"}}}},
	{"probe fail", Verdicts{[]rollout.Verdict{{Gate: rollout.ProbeGate, Result: rollout.Fail}}}},
	{"pause", Operator{Action: Pause, Actor: "op"}},
	{"resume", Operator{Action: Resume, Actor: "op"}},
	{"promote", Operator{Action: Promote, Actor: "op"}},
	{"abort", Operator{Action: Abort, Actor: "op"}},
	{"retry", Operator{Action: Retry, Actor: "op"}},
	{"git same", nil}, // what the state believes, built from it by gitSame
	{"git other", Git{rollout.GitChange{Rollout: "demo", Weights: rollout.CanaryAt(50), Commit: "c0ffee", Author: "bob", Cause: rollout.CauseEdit}}},
	{"applied", Applied{Move: rollout.Move{Kind: rollout.Forward, Weights: rollout.CanaryAt(100)}}},
}

const illegal rollout.Phase = "(refused)"

// want is the phase each phase goes to on each input, in the order of inputs, and the kind
// of move it asks for ("" none).
var want = map[rollout.Phase][]struct {
	phase rollout.Phase
	move  rollout.MoveKind
}{
	rollout.Idle: {{rollout.Progressing, rollout.Forward}, {rollout.Idle, ""}, {rollout.Idle, ""}, {rollout.Idle, ""}, {rollout.Idle, ""}, {rollout.Idle, ""},
		{illegal, ""}, {illegal, ""}, {illegal, ""}, {illegal, ""}, {rollout.Progressing, rollout.Retry}, {rollout.Idle, ""}, {rollout.Overridden, rollout.Follow}, {rollout.Idle, ""}},
	rollout.Progressing: {{rollout.Progressing, ""}, {rollout.Progressing, rollout.Forward}, {rollout.Progressing, ""}, {rollout.RolledBack, rollout.Rollback},
		{rollout.Progressing, ""}, {rollout.RolledBack, rollout.Rollback}, {rollout.Paused, rollout.Pause}, {illegal, ""}, {rollout.Progressing, rollout.Promote},
		{rollout.Aborted, rollout.Abort}, {illegal, ""}, {rollout.Progressing, ""}, {rollout.Overridden, rollout.Follow}, {rollout.Progressing, ""}},
	rollout.Paused: {{rollout.Paused, ""}, {rollout.Paused, ""}, {rollout.Paused, ""}, {rollout.RolledBack, rollout.Rollback},
		{rollout.Paused, ""}, {rollout.RolledBack, rollout.Rollback}, {illegal, ""}, {rollout.Progressing, rollout.Resume}, {rollout.Progressing, rollout.Promote},
		{rollout.Aborted, rollout.Abort}, {illegal, ""}, {rollout.Paused, ""}, {rollout.Overridden, rollout.Follow}, {rollout.Paused, ""}},
	rollout.Succeeded: {{rollout.Succeeded, ""}, {rollout.Succeeded, ""}, {rollout.Succeeded, ""}, {rollout.Succeeded, ""}, {rollout.Succeeded, ""}, {rollout.Succeeded, ""},
		{illegal, ""}, {illegal, ""}, {illegal, ""}, {illegal, ""}, {illegal, ""}, {rollout.Succeeded, ""}, {rollout.Overridden, rollout.Follow}, {rollout.Succeeded, ""}},
	rollout.RolledBack: {{rollout.RolledBack, ""}, {rollout.RolledBack, ""}, {rollout.RolledBack, ""}, {rollout.RolledBack, ""}, {rollout.RolledBack, ""}, {rollout.RolledBack, ""},
		{illegal, ""}, {illegal, ""}, {illegal, ""}, {illegal, ""}, {rollout.Progressing, rollout.Retry}, {rollout.RolledBack, ""}, {rollout.Overridden, rollout.Follow}, {rollout.RolledBack, ""}},
	rollout.Overridden: {{rollout.Overridden, ""}, {rollout.Overridden, ""}, {rollout.Overridden, ""}, {rollout.Overridden, ""}, {rollout.Overridden, ""}, {rollout.Overridden, ""},
		{illegal, ""}, {rollout.Progressing, rollout.Resume}, {rollout.Progressing, rollout.Promote}, {rollout.Aborted, rollout.Abort}, {illegal, ""},
		{rollout.Overridden, ""}, {rollout.Overridden, rollout.Follow}, {rollout.Overridden, ""}},
	rollout.Aborted: {{rollout.Aborted, ""}, {rollout.Aborted, ""}, {rollout.Aborted, ""}, {rollout.Aborted, ""}, {rollout.Aborted, ""}, {rollout.Aborted, ""},
		{illegal, ""}, {illegal, ""}, {illegal, ""}, {illegal, ""}, {rollout.Progressing, rollout.Retry}, {rollout.Aborted, ""}, {rollout.Overridden, rollout.Follow}, {rollout.Aborted, ""}},
	rollout.Invalid: {{rollout.Invalid, ""}, {rollout.Invalid, ""}, {rollout.Invalid, ""}, {rollout.Invalid, ""}, {rollout.Invalid, ""}, {rollout.Invalid, ""},
		{illegal, ""}, {illegal, ""}, {illegal, ""}, {illegal, ""}, {illegal, ""}, {rollout.Invalid, ""}, {rollout.Invalid, ""}, {rollout.Invalid, ""}},
}

// stateIn returns a typical state of a rollout in phase p.
func stateIn(p rollout.Phase) rollout.State {
	st := rollout.State{Rollout: "demo", Phase: p, Run: 1, Step: 1, Weights: rollout.CanaryAt(40), Own: "0wn",
		StepSince: at("09:10:00"), BakeSince: at("09:10:00"), LastTick: at("09:50:00"),
		Gates: map[string]rollout.GateState{
			rollout.TemplateSuccessRate: {Last: rollout.Pass, Failures: 1},
			rollout.ProbeGate:           {Last: rollout.Pass, Failures: 1},
		}}
	switch p {
	case rollout.Idle:
		st = NewState("demo", rollout.CanaryAt(0))
	case rollout.Succeeded:
		st.Step, st.Weights = 2, rollout.CanaryAt(100)
	case rollout.RolledBack, rollout.Aborted:
		st.Step, st.Weights = -1, rollout.CanaryAt(0)
	}
	return st
}

func TestDecideEveryPhaseAndInput(t *testing.T) {
	doc := mustParse(t, specYAML+"  probe:\n    grpcurl: -plaintext gw:8080 helloworld.Greeter/SayHello\n")
	if len(want) != len(rollout.Phases) {
		t.Fatalf("the table covers %d phases, want all %d", len(want), len(rollout.Phases))
	}
	for _, phase := range rollout.Phases {
		if len(want[phase]) != len(inputs) {
			t.Fatalf("%s: the table has %d inputs, want %d", phase, len(want[phase]), len(inputs))
		}
		for i, in := range inputs {
			t.Run(fmt.Sprintf("%s/%s", phase, in.name), func(t *testing.T) {
				st := stateIn(phase)
				input := in.in
				if input == nil {
					input = gitSame(st)
				}
				out, err := Decide(doc, st, input, at("10:00:00"))
				w := want[phase][i]
				if w.phase == illegal {
					if !errors.Is(err, ErrIllegal) {
						t.Fatalf("err = %v, want ErrIllegal", err)
					}
					if out.State.Phase != phase || out.Move != nil || len(out.Events) != 0 {
						t.Fatalf("a refused action changed something: %+v", out)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got := out.State.Phase
				if got != w.phase {
					t.Errorf("phase %s, want %s (message %q)", got, w.phase, out.State.Message)
				}
				if got != phase && !slices.Contains(Transitions[phase], got) {
					t.Errorf("%s → %s is not in the transition table", phase, got)
				}
				var move rollout.MoveKind
				if out.Move != nil {
					move = out.Move.Kind
					if out.State.Pending == nil || *out.State.Pending != *out.Move {
						t.Errorf("move %+v is not the pending intent %+v", out.Move, out.State.Pending)
					}
					if !slices.ContainsFunc(out.Events, func(e rollout.Event) bool { return e.Kind == rollout.EventIntent }) {
						t.Errorf("move without an intent event")
					}
				}
				if move != w.move {
					t.Errorf("move %q, want %q", move, w.move)
				}
			})
		}
	}
}

// gitSame is Git saying exactly what st believes: its weights, its newest commit.
func gitSame(st rollout.State) Git {
	ch := rollout.GitChange{Rollout: st.Rollout, Weights: st.Weights, Commit: st.Own, Cause: rollout.CauseCanaryd}
	if st.Own != "" {
		ch.Latest = &rollout.Record{Commit: st.Own, Kind: rollout.Forward, Run: st.Run, Step: st.Step, Weights: st.Weights}
	}
	return Git{ch}
}

func TestDecideTickIsIdempotent(t *testing.T) {
	doc := mustParse(t, specYAML)
	st := stateIn(rollout.Progressing)
	st.Step, st.Weights = 0, rollout.CanaryAt(0)
	out, err := Decide(doc, st, Tick{At: at("10:00:00")}, at("10:00:00"))
	if err != nil || out.Move == nil || out.Move.Weights.Canary != 40 {
		t.Fatalf("first tick: move %+v, err %v; want a step to 40", out.Move, err)
	}
	// The step lands, then the same tick is delivered again: no second step.
	out, _ = Decide(doc, out.State, Applied{Move: *out.Move, Commit: "sha1"}, at("10:00:00"))
	out2, _ := Decide(doc, out.State, Tick{At: at("10:00:00")}, at("10:00:00"))
	if out2.Move != nil {
		t.Fatalf("the same tick stepped twice: %+v", out2.Move)
	}
	// Even a new tick at the same instant does not step: the new step has not baked.
	out3, _ := Decide(doc, out.State, Tick{At: at("10:00:01")}, at("10:00:01"))
	if out3.Move != nil {
		t.Fatalf("an unbaked step advanced: %+v", out3.Move)
	}
}

func TestDecideFailureRestartsBake(t *testing.T) {
	doc := mustParse(t, specYAML)
	st := stateIn(rollout.Progressing)
	st.Gates = nil
	fail := Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Fail}}}
	ok := Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Pass}}}
	out, _ := Decide(doc, st, fail, at("09:58:00"))
	out, _ = Decide(doc, out.State, ok, at("09:59:00"))
	if out.State.Phase != rollout.Progressing || out.State.Gates[rollout.TemplateSuccessRate].Failures != 0 {
		t.Fatalf("a pass after one failure: %+v", out.State)
	}
	out, _ = Decide(doc, out.State, Tick{At: at("10:00:00")}, at("10:00:00"))
	if out.Move != nil {
		t.Fatalf("stepped 2 minutes after a failed check with a 5m bake")
	}
	out, _ = Decide(doc, out.State, Tick{At: at("10:10:00")}, at("10:10:00"))
	if out.Move == nil {
		t.Fatalf("did not step once the bake window was clean: %q", out.State.Message)
	}
}

func BenchmarkDecide(b *testing.B) {
	doc := mustParse(b, specYAML)
	st := stateIn(rollout.Progressing)
	in := Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Pass, Time: at("10:00:00")}}}
	now := at("10:00:00")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decide(doc, st, in, now); err != nil {
			b.Fatal(err)
		}
	}
}
