package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

func rec(kind rollout.MoveKind, run, step int, canary int) *rollout.Record {
	return &rollout.Record{Commit: "c-" + string(kind), Kind: kind, Run: run, Step: step, Steps: 3, Weights: rollout.CanaryAt(canary)}
}

func TestRecover(t *testing.T) {
	doc := mustParse(t, specYAML)
	now := at("12:00:00")
	type want struct {
		phase   rollout.Phase
		run     int
		step    int
		canary  int
		pending bool
	}
	tests := []struct {
		name   string
		latest *rollout.Record
		head   int // canary weight at the head
		want   want
	}{
		{"no canaryd commit", nil, 0, want{rollout.Idle, 0, -1, 0, false}},
		{"no canaryd commit, a person's 30%", nil, 30, want{rollout.Idle, 0, -1, 30, false}},
		{"first step", rec(rollout.Forward, 1, 0, 0), 0, want{rollout.Progressing, 1, 0, 0, true}},
		{"middle step", rec(rollout.Forward, 1, 1, 40), 40, want{rollout.Progressing, 1, 1, 40, true}},
		{"last step", rec(rollout.Forward, 1, 2, 100), 100, want{rollout.Succeeded, 1, 2, 100, true}},
		{"promoted", rec(rollout.Promote, 2, 2, 100), 100, want{rollout.Succeeded, 2, 2, 100, true}},
		{"rolled back", rec(rollout.Rollback, 1, -1, 0), 0, want{rollout.RolledBack, 1, -1, 0, true}},
		{"aborted", rec(rollout.Abort, 3, -1, 0), 0, want{rollout.Aborted, 3, -1, 0, true}},
		{"undone", rec(rollout.Undo, 2, -1, 0), 0, want{rollout.RolledBack, 2, -1, 0, true}},
		{"promoted one step", rec(rollout.Promote, 1, 1, 40), 40, want{rollout.Progressing, 1, 1, 40, true}},
		{"paused", rec(rollout.Pause, 1, 1, 40), 40, want{rollout.Paused, 1, 1, 40, true}},
		{"resumed", rec(rollout.Resume, 1, 1, 40), 40, want{rollout.Progressing, 1, 1, 40, true}},
		{"retried", rec(rollout.Retry, 2, 0, 0), 0, want{rollout.Progressing, 2, 0, 0, true}},
		{"reverted after step 2", rec(rollout.Forward, 1, 1, 40), 0, want{rollout.Overridden, 1, 0, 0, true}},
		{"hand edit after step 2", rec(rollout.Forward, 1, 1, 40), 50, want{rollout.Overridden, 1, 1, 50, true}},
		{"hand edit after an abort", rec(rollout.Abort, 1, -1, 0), 100, want{rollout.Overridden, 1, 2, 100, true}},
		{"hand edit after a pause", rec(rollout.Pause, 1, 1, 40), 10, want{rollout.Overridden, 1, 0, 10, true}},
		{"a step beyond the spec's steps", rec(rollout.Forward, 1, 7, 40), 40, want{rollout.Progressing, 1, 1, 40, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := rollout.GitChange{Rollout: "demo", Weights: rollout.CanaryAt(tt.head), Commit: "head-setter",
				Author: "pat", Cause: rollout.CauseEdit, Latest: tt.latest}
			st := Recover(doc, ch, now)
			got := want{st.Phase, st.Run, st.Step, st.Weights.Canary, st.Pending != nil}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("Recover (-want +got):\n%s\nmessage %q", diff, st.Message)
			}
			if st.Own != ch.LatestCommit() {
				t.Errorf("Own = %q, want the newest canaryd commit %q", st.Own, ch.LatestCommit())
			}
			if p := st.Pending; p != nil && (p.Kind != rollout.Follow || p.Weights != ch.Weights || p.Commit == "") {
				t.Errorf("pending %+v, want a Follow of the head's weights with its commit", p)
			}
			if !Agrees(st, ch) {
				t.Errorf("the recovered state does not agree with the Git it came from")
			}
			if !st.BakeSince.Equal(now) || len(st.Gates) != 0 {
				t.Errorf("bake since %s, gates %v; want the bake restarted and no gate passed", st.BakeSince, st.Gates)
			}
		})
	}
}

// TestGitCountsOnlyTheRolloutsOwnCommits: a commit with canaryd's trailers that the state
// does not record — another canaryd instance's, or a history rewritten under it — is
// treated like a person's change; the commit of the pending move is the rollout's own.
func TestGitCountsOnlyTheRolloutsOwnCommits(t *testing.T) {
	doc := mustParse(t, specYAML)
	now := at("12:00:00")
	st := stateIn(rollout.Progressing) // step 1, canary 40, Own "0wn"
	mine := &rollout.Record{Commit: "0wn", Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3, Weights: rollout.CanaryAt(40)}
	tests := []struct {
		name      string
		st        func(rollout.State) rollout.State
		ch        rollout.GitChange
		phase     rollout.Phase
		landed    string // the pending move's commit afterwards
		overrides bool
	}{
		{"what the state records", nil, rollout.GitChange{Weights: rollout.CanaryAt(40), Commit: "0wn", Cause: rollout.CauseCanaryd, Latest: mine},
			rollout.Progressing, "", false},
		{"another instance's abort", nil, rollout.GitChange{Weights: rollout.CanaryAt(0), Commit: "tw1n", Cause: rollout.CauseCanaryd,
			Latest: &rollout.Record{Commit: "tw1n", Kind: rollout.Abort, Run: 1, Step: -1, Weights: rollout.CanaryAt(0)}}, rollout.Overridden, "", true},
		{"another instance's step at the same weights", nil, rollout.GitChange{Weights: rollout.CanaryAt(40), Commit: "0wn", Cause: rollout.CauseCanaryd,
			Latest: &rollout.Record{Commit: "tw1n", Kind: rollout.Pause, Run: 1, Step: 1, Weights: rollout.CanaryAt(40)}}, rollout.Overridden, "", true},
		{"a force-push that drops the step", nil, rollout.GitChange{Weights: rollout.CanaryAt(0), Commit: "older", Cause: rollout.CauseCanaryd,
			Latest: &rollout.Record{Commit: "older", Kind: rollout.Forward, Run: 1, Step: 0, Weights: rollout.CanaryAt(0)}}, rollout.Overridden, "", true},
		{"a force-push that drops every canaryd commit", nil, rollout.GitChange{Weights: rollout.CanaryAt(40), Commit: "seed", Cause: rollout.CauseEdit},
			rollout.Overridden, "", true},
		{"the pending step landed, by whoever pushed it", func(st rollout.State) rollout.State {
			st.Pending = &rollout.Move{Kind: rollout.Forward, Run: 1, Step: 2, Weights: rollout.CanaryAt(100)}
			return st
		}, rollout.GitChange{Weights: rollout.CanaryAt(100), Commit: "n3xt", Cause: rollout.CauseCanaryd,
			Latest: &rollout.Record{Commit: "n3xt", Kind: rollout.Forward, Run: 1, Step: 2, Weights: rollout.CanaryAt(100)}}, rollout.Progressing, "n3xt", false},
		{"a rollback not committed yet while Git still holds the step", func(st rollout.State) rollout.State {
			st.Pending = &rollout.Move{Kind: rollout.Rollback, Run: 1, Step: -1, Weights: rollout.CanaryAt(0)}
			return st
		}, rollout.GitChange{Weights: rollout.CanaryAt(40), Commit: "0wn", Cause: rollout.CauseCanaryd, Latest: mine}, rollout.Progressing, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := st
			if tt.st != nil {
				s = tt.st(s)
			}
			tt.ch.Rollout = "demo"
			out, err := Decide(doc, s, Git{tt.ch}, now)
			if err != nil {
				t.Fatal(err)
			}
			if out.State.Phase != tt.phase {
				t.Errorf("phase %s, want %s (%s)", out.State.Phase, tt.phase, out.State.Message)
			}
			if tt.overrides {
				if out.State.Own != tt.ch.LatestCommit() || out.State.Weights != tt.ch.Weights {
					t.Errorf("overridden state own %q at %s, want Git's %q at %s", out.State.Own, out.State.Weights, tt.ch.LatestCommit(), tt.ch.Weights)
				}
				if out.Move == nil || out.Move.Kind != rollout.Follow {
					t.Errorf("move %+v, want a Follow of Git's weights", out.Move)
				}
				return
			}
			if out.Move != nil {
				t.Errorf("move %+v, want none", out.Move)
			}
			if p := out.State.Pending; tt.landed != "" && (p == nil || p.Commit != tt.landed) {
				t.Errorf("pending %+v, want its commit %s recorded", p, tt.landed)
			}
		})
	}
}

// TestHoldsAreCommits: pause, resume and retry each plan a commit, so that they survive a
// lost store and a takeover; a hold is refused while another move is in flight.
func TestHoldsAreCommits(t *testing.T) {
	doc := mustParse(t, specYAML)
	now := at("12:00:00")
	st := stateIn(rollout.Progressing)
	out, err := Decide(doc, st, Operator{Action: Pause, Actor: "ann", Reason: "looking at the logs"}, now)
	if err != nil || out.Move == nil || out.Move.Kind != rollout.Pause || out.Move.Weights != st.Weights || out.Move.Actor != "ann" {
		t.Fatalf("pause: move %+v, err %v; want a pause commit at %s by ann", out.Move, err, st.Weights)
	}
	if _, err := Decide(doc, out.State, Operator{Action: Resume, Actor: "ann"}, now); err == nil {
		t.Error("resume while the pause is being committed was accepted")
	}
	landed, _ := Decide(doc, out.State, Applied{Move: *out.Move, Commit: "p4use"}, now)
	if landed.State.Phase != rollout.Paused || landed.State.Own != "p4use" || len(landed.Events) != 1 || landed.Events[0].Kind != rollout.EventPaused ||
		landed.Events[0].Commit != "p4use" || landed.Events[0].Reason != "looking at the logs" {
		t.Fatalf("pause landed: %+v, events %+v", landed.State, landed.Events)
	}
	res, err := Decide(doc, landed.State, Operator{Action: Resume, Actor: "bob"}, now)
	if err != nil || res.Move == nil || res.Move.Kind != rollout.Resume || res.State.Phase != rollout.Progressing {
		t.Fatalf("resume: %+v, %v", res.Move, err)
	}
	rb := stateIn(rollout.RolledBack)
	retry, err := Decide(doc, rb, Operator{Action: Retry, Actor: "cy"}, now)
	if err != nil || retry.Move == nil || retry.Move.Kind != rollout.Retry || retry.Move.Run != rb.Run+1 || retry.Move.Actor != "cy" {
		t.Fatalf("retry: %+v, %v; want a retry commit of run %d", retry.Move, err, rb.Run+1)
	}
}
