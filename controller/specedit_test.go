package controller

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

// withSteps is specYAML with other steps, and extra appended to its spec.
func withSteps(t *testing.T, steps, extra string) *rollout.Document {
	t.Helper()
	return mustParse(t, strings.Replace(specYAML, "steps: [0, 40, 100]", "steps: "+steps, 1)+extra)
}

const probeYAML = "  probe:\n    grpcurl: -plaintext gw:8080 helloworld.Greeter/SayHello\n"

// invalidated is doc marked as the last valid spec of one that no longer validates.
func invalidated(doc *rollout.Document, why string) *rollout.Document {
	cp := *doc
	cp.Invalidated = rollout.Problems{{File: "rollouts/demo.yaml", Line: 12, Col: 5, Field: "spec.steps[1]", Msg: why}}
	return &cp
}

// at40 is a rollout at step 1 of [0, 40, 100] (canary 40), baked, its gate passing.
func at40(phase rollout.Phase) rollout.State {
	st := stateIn(phase)
	st.Gates = map[string]rollout.GateState{rollout.TemplateSuccessRate: {Last: rollout.Pass}}
	return st
}

func TestDecideSpecChanged(t *testing.T) {
	old := mustParse(t, specYAML)
	at70 := func() rollout.State {
		st := at40(rollout.Progressing)
		st.Step, st.Weights = 2, rollout.CanaryAt(70)
		return st
	}
	old70 := withSteps(t, "[0, 40, 70, 100]", "")
	tests := []struct {
		name     string
		old, new *rollout.Document
		st       rollout.State
		step     int    // the step after the change
		msg      string // the spec-changed event's message ("" none)
		next     int    // the canary weight the next tick steps to (-1 none)
	}{
		{"current step removed", old, withSteps(t, "[0, 20, 60, 100]", ""), at40(rollout.Progressing), 1,
			"steps 0,40,100 -> 0,20,60,100: at 40 % (not a step of the new list), next 60", 60},
		{"steps extended", old, withSteps(t, "[0, 40, 60, 80, 100]", ""), at40(rollout.Progressing), 1,
			"steps 0,40,100 -> 0,40,60,80,100: at 40 %, next 60", 60},
		{"steps cut below the current weight", old70, withSteps(t, "[0, 20, 40, 100]", ""), at70(), 2,
			"steps 0,40,70,100 -> 0,20,40,100: at 70 % (not a step of the new list), next 100", 100},
		{"every step below the weight but 100", old70, withSteps(t, "[0, 10, 100]", ""), at70(), 1,
			"steps 0,40,70,100 -> 0,10,100: at 70 % (not a step of the new list), next 100", 100},
		{"steps added below the weight", old, withSteps(t, "[0, 10, 20, 40, 100]", ""), at40(rollout.Progressing), 3,
			"steps 0,40,100 -> 0,10,20,40,100: at 40 %, next 100", 100},
		{"a gate added", old, mustParse(t, specYAML+probeYAML), at40(rollout.Progressing), 1,
			"gates grpc-success-rate -> grpc-success-rate,probe: at 40 %, next 100", -1},
		{"the only gate dropped", old, mustParse(t, strings.Replace(specYAML, "    metrics:\n      - template: grpc-success-rate\n        min: 0.99\n", "", 1)),
			at40(rollout.Progressing), 1, "gates grpc-success-rate -> none: at 40 %, next 100", 100},
		{"paused", old, withSteps(t, "[0, 20, 100]", ""), at40(rollout.Paused), 1,
			"steps 0,40,100 -> 0,20,100: at 40 % (not a step of the new list), next 100 (paused)", -1},
		{"succeeded", old, withSteps(t, "[0, 20, 50, 100]", ""), stateIn(rollout.Succeeded), 3,
			"steps 0,40,100 -> 0,20,50,100: at 100 %, Succeeded", -1},
		{"rolled back", old, withSteps(t, "[0, 20, 50, 100]", ""), stateIn(rollout.RolledBack), -1,
			"steps 0,40,100 -> 0,20,50,100: at 0 %, RolledBack", -1},
		{"nothing that matters", old, mustParse(t, specYAML), at40(rollout.Progressing), 1, "", 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Decide(tt.new, tt.st, SpecChanged{Old: tt.old}, at("10:00:00"))
			if err != nil {
				t.Fatal(err)
			}
			st := out.State
			if out.Move != nil || st.Phase != tt.st.Phase || st.Weights != tt.st.Weights {
				t.Fatalf("a spec change moved the rollout: move %+v, %s at %s", out.Move, st.Phase, st.Weights)
			}
			if st.Step != tt.step {
				t.Errorf("step %d, want %d", st.Step, tt.step)
			}
			var msgs []string
			for _, ev := range out.Events {
				msgs = append(msgs, ev.Message)
				if ev.Kind != rollout.EventSpecChanged {
					t.Errorf("event %s, want %s", ev.Kind, rollout.EventSpecChanged)
				}
			}
			if want := slices.DeleteFunc([]string{tt.msg}, func(s string) bool { return s == "" }); !slices.Equal(msgs, want) {
				t.Errorf("events %q, want %q", msgs, want)
			}
			if !st.StepSince.Equal(tt.st.StepSince) || !st.BakeSince.Equal(tt.st.BakeSince) {
				t.Errorf("the step's bake restarted: since %s", st.BakeSince)
			}
			for g := range st.Gates {
				if !slices.Contains(tt.new.Spec.Gates(1), g) {
					t.Errorf("gate %s the new spec dropped is still remembered", g)
				}
			}
			next, _ := Decide(tt.new, st, Tick{At: at("10:10:00")}, at("10:10:00"))
			switch {
			case tt.next < 0 && next.Move != nil && next.Move.Kind == rollout.Forward:
				t.Errorf("the next tick stepped to %s, want no step (%q)", next.Move.Weights, next.State.Message)
			case tt.next >= 0 && (next.Move == nil || next.Move.Weights.Canary != tt.next):
				t.Errorf("the next tick: move %+v, want a step to %d (%q)", next.Move, tt.next, next.State.Message)
			}
		})
	}
}

// TestDecideSpecChangedEveryPhase: a spec change never moves a rollout, in any phase.
func TestDecideSpecChangedEveryPhase(t *testing.T) {
	old := mustParse(t, specYAML)
	cur := withSteps(t, "[0, 20, 60, 100]", probeYAML)
	for _, phase := range rollout.Phases {
		t.Run(string(phase), func(t *testing.T) {
			for _, doc := range []*rollout.Document{cur, invalidated(old, "is duplicated")} {
				st := stateIn(phase)
				out, err := Decide(doc, st, SpecChanged{Old: old}, at("10:00:00"))
				if err != nil {
					t.Fatal(err)
				}
				if out.Move != nil || out.State.Phase != phase || out.State.Weights != st.Weights || out.State.Run != st.Run {
					t.Errorf("a spec change moved a %s rollout: %+v", phase, out)
				}
			}
		})
	}
}

// TestDecideStepUnderWayWhenStepsAreCut: a step forward decided on the old spec lands
// where it was decided, and counts in the new list from there: a step to 70 % under way
// while the list becomes [0, 20, 100] lands at 70 % on step 2 of 3, not Succeeded.
func TestDecideStepUnderWayWhenStepsAreCut(t *testing.T) {
	old := withSteps(t, "[0, 40, 70, 100]", "")
	st := at40(rollout.Progressing)
	out, err := Decide(old, st, Tick{At: at("10:00:00")}, at("10:00:00"))
	if err != nil || out.Move == nil || out.Move.Weights.Canary != 70 {
		t.Fatalf("tick: move %+v, err %v; want a step to 70", out.Move, err)
	}
	move := *out.Move
	cut := withSteps(t, "[0, 20, 100]", "")
	out, _ = Decide(cut, out.State, SpecChanged{Old: old}, at("10:00:01"))
	if got := out.Events[0].Message; got != "steps 0,40,70,100 -> 0,20,100: at 40 % (not a step of the new list), the step to 70 % under way lands first, next 100" {
		t.Errorf("event %q", got)
	}
	out, _ = Decide(cut, out.State, Applied{Move: move, Commit: "c70"}, at("10:00:02"))
	if st := out.State; st.Phase != rollout.Progressing || st.Step != 1 || st.Weights.Canary != 70 || st.Pending != nil {
		t.Fatalf("after the step landed: %s step %d at %s pending %+v; want Progressing at 70 on step 1", st.Phase, st.Step, st.Weights, st.Pending)
	}
	out, _ = Decide(cut, out.State, Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Pass}}}, at("10:06:00"))
	out, _ = Decide(cut, out.State, Tick{At: at("10:10:00")}, at("10:10:00"))
	if out.Move == nil || out.Move.Weights.Canary != 100 || out.Move.Step != 2 {
		t.Fatalf("the next tick: move %+v (%q), want step 3/3 to 100", out.Move, out.State.Message)
	}
}

// TestDecideInvalidatedSpec: on the last valid spec of one that no longer validates, the
// gates keep running and a failing canary rolls back; no step forward, no new run; one
// event per distinct reason; a fixed spec records that it is valid again.
func TestDecideInvalidatedSpec(t *testing.T) {
	good := mustParse(t, specYAML)
	bad := invalidated(good, "40 is duplicated")
	out, err := Decide(bad, at40(rollout.Progressing), SpecChanged{Old: good}, at("10:00:00"))
	if err != nil {
		t.Fatal(err)
	}
	const said = "spec invalid at rollouts/demo.yaml:12: spec.steps[1]: 40 is duplicated; running on the last valid spec"
	if len(out.Events) != 1 || out.Events[0].Kind != rollout.EventInvalid || out.Events[0].Message != said {
		t.Fatalf("events %+v, want one %s event %q", out.Events, rollout.EventInvalid, said)
	}
	if out.State.Message != said {
		t.Errorf("message %q, want %q", out.State.Message, said)
	}
	again, _ := Decide(invalidated(good, "40 is duplicated"), out.State, SpecChanged{Old: bad}, at("10:00:30"))
	if len(again.Events) != 0 {
		t.Errorf("the same reason recorded again: %+v", again.Events)
	}
	other := invalidated(good, "unknown field \"stepz\"")
	if o, _ := Decide(other, out.State, SpecChanged{Old: bad}, at("10:00:40")); len(o.Events) != 1 || o.Events[0].Kind != rollout.EventInvalid {
		t.Errorf("a new reason: events %+v, want one %s", o.Events, rollout.EventInvalid)
	}
	tick, _ := Decide(bad, out.State, Tick{At: at("10:10:00")}, at("10:10:00"))
	if tick.Move != nil || !strings.Contains(tick.State.Message, "no step forward until the spec is fixed") {
		t.Errorf("tick on an invalidated spec: move %+v, message %q; want no step", tick.Move, tick.State.Message)
	}
	fail := Verdicts{[]rollout.Verdict{{Gate: rollout.TemplateSuccessRate, Result: rollout.Fail, Reason: "0.5 < 0.99"}}}
	st := tick.State
	for range 2 {
		o, _ := Decide(bad, st, fail, at("10:11:00"))
		st = o.State
	}
	if st.Phase != rollout.RolledBack || st.Pending == nil || st.Pending.Kind != rollout.Rollback || st.Pending.Weights.Canary != 0 {
		t.Fatalf("a failing canary on an invalidated spec: %s, pending %+v; want a rollback to 0", st.Phase, st.Pending)
	}
	if _, err := Decide(bad, stateIn(rollout.RolledBack), Operator{Action: Retry, Actor: "op"}, at("10:12:00")); !errors.Is(err, ErrIllegal) {
		t.Errorf("retry on an invalidated spec: err %v, want ErrIllegal", err)
	}
	if o, _ := Decide(bad, NewState("demo", rollout.CanaryAt(0)), Start{}, at("10:12:00")); o.State.Phase != rollout.Idle {
		t.Errorf("a run started on an invalidated spec: %s", o.State.Phase)
	}
	fixed := withSteps(t, "[0, 50, 100]", "")
	o, _ := Decide(fixed, out.State, SpecChanged{Old: bad}, at("10:13:00"))
	const valid = "spec valid again; steps 0,40,100 -> 0,50,100: at 40 % (not a step of the new list), next 50"
	if len(o.Events) != 1 || o.Events[0].Kind != rollout.EventSpecChanged || o.Events[0].Message != valid {
		t.Errorf("fixed: events %+v, want one %q", o.Events, valid)
	}
}

// TestResumeFromOverriddenAtTheLastStep: a person sets 100 % by hand, an operator resumes;
// once the gates pass the rollout is Succeeded (it never stays Progressing at 100 %), both
// from the state Decide keeps and from the state Recover derives from the resume commit.
func TestResumeFromOverriddenAtTheLastStep(t *testing.T) {
	for _, extra := range []string{"", probeYAML} {
		doc := mustParse(t, specYAML+extra)
		st := at40(rollout.Progressing)
		hand := rollout.GitChange{Rollout: "demo", Weights: rollout.CanaryAt(100), Commit: "hand", Author: "pat", Cause: rollout.CauseEdit}
		out, _ := Decide(doc, st, Git{hand}, at("10:00:00"))
		out, _ = Decide(doc, out.State, Applied{Move: *out.Move, Commit: "hand"}, at("10:00:01"))
		if out.State.Phase != rollout.Overridden || out.State.Step != 2 {
			t.Fatalf("after a hand edit to 100: %s step %d", out.State.Phase, out.State.Step)
		}
		out, err := Decide(doc, out.State, Operator{Action: Resume, Actor: "op"}, at("10:01:00"))
		if err != nil {
			t.Fatal(err)
		}
		resume := *out.Move
		out, _ = Decide(doc, out.State, Applied{Move: resume, Commit: "resume"}, at("10:01:01"))
		recovered := Recover(doc, rollout.GitChange{Rollout: "demo", Weights: rollout.CanaryAt(100), Commit: "resume",
			Latest: &rollout.Record{Commit: "resume", Kind: rollout.Resume, Run: resume.Run, Step: resume.Step, Steps: 3, Weights: resume.Weights}},
			at("10:01:02"))
		recovered.Pending = nil // the Follow of what Git holds has landed
		for name, st := range map[string]rollout.State{"decided": out.State, "recovered": recovered} {
			if st.Phase != rollout.Progressing || st.Step != 2 {
				t.Fatalf("%s: after the resume: %s step %d (%q)", name, st.Phase, st.Step, st.Message)
			}
			var pass []rollout.Verdict
			for _, g := range doc.Spec.Gates(100) {
				pass = append(pass, rollout.Verdict{Gate: g, Result: rollout.Pass})
			}
			o, _ := Decide(doc, st, Verdicts{pass}, at("10:02:00"))
			o, _ = Decide(doc, o.State, Tick{At: at("10:10:00")}, at("10:10:00"))
			if o.State.Phase != rollout.Succeeded || o.Move != nil {
				t.Errorf("%s, gates %v: once the gates pass: %s move %+v (%q), want Succeeded", name, doc.Spec.Gates(100), o.State.Phase, o.Move, o.State.Message)
			}
		}
	}
}

// TestRecoverAfterTheStepsChanged: the step of the newest commit counts in the steps as
// they are now.
func TestRecoverAfterTheStepsChanged(t *testing.T) {
	doc := withSteps(t, "[0, 20, 100]", "")
	ch := rollout.GitChange{Rollout: "demo", Weights: rollout.CanaryAt(70), Commit: "c70",
		Latest: &rollout.Record{Commit: "c70", Kind: rollout.Forward, Run: 1, Step: 2, Steps: 4, Weights: rollout.CanaryAt(70)}}
	st := Recover(doc, ch, at("10:00:00"))
	if st.Phase != rollout.Progressing || st.Step != 1 {
		t.Fatalf("recovered %s at step %d, want Progressing at step 1 (20 %%, next 100)", st.Phase, st.Step)
	}
}

// TestLoopTakesASpecEdit: the worker feeds a new spec to Decide when Set gives it one: at
// 40 % of [0, 40, 100], steps [0, 40, 60, 100] go on to 60 then 100.
func TestLoopTakesASpecEdit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), pass)
		defer h.stop()
		h.expect("09:10:00", rollout.Progressing, 40)
		h.ctrl.Set([]*rollout.Document{withSteps(t, "[0, 40, 60, 100]", "")})
		synctest.Wait()
		if evs := h.store.events("demo", rollout.EventSpecChanged); len(evs) != 1 || evs[0].Message != "steps 0,40,100 -> 0,40,60,100: at 40 %, next 60" {
			t.Errorf("spec-changed events %+v", evs)
		}
		h.expect("09:20:00", rollout.Progressing, 60)
		h.expect("09:30:00", rollout.Progressing, 100)
		if got, want := h.repo.weights(), []int{0, 40, 60, 100}; !cmp.Equal(got, want) {
			t.Errorf("commits of canary weights %v, want %v", got, want)
		}
	})
}

// TestLoopRollsBackOnAnInvalidatedSpec: a rollout at 40 % whose spec turned invalid runs on
// the last valid one: no step at the next tick, and a canary that starts failing rolls back.
func TestLoopRollsBackOnAnInvalidatedSpec(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), failFrom("09:21:00"))
		defer h.stop()
		h.expect("09:10:00", rollout.Progressing, 40)
		h.ctrl.Set([]*rollout.Document{invalidated(h.doc, "40 is duplicated")})
		synctest.Wait()
		h.expect("09:20:30", rollout.Progressing, 40) // the 09:20 tick took no step
		h.expect("09:22:00", rollout.RolledBack, 0)
		if evs := h.store.events("demo", rollout.EventInvalid); len(evs) != 1 {
			t.Errorf("invalid events %+v, want one", evs)
		}
	})
}
