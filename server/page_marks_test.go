package server

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

// twoRuns is a history (newest first) of a run that was rolled back and a second run that
// was promoted one step, then undone by an operator.
func twoRuns() []rollout.Event {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	old := []rollout.Event{
		{Seq: 1, Time: at(0), Kind: rollout.EventStarted, Run: 1, Step: -1, Phase: rollout.Progressing},
		{Seq: 2, Time: at(1), Kind: rollout.EventStep, Run: 1, Step: 1, Weights: rollout.CanaryAt(40), Commit: "c1"},
		{Seq: 3, Time: at(2), Kind: rollout.EventVerdict, Run: 1, Step: 1, Weights: rollout.CanaryAt(40),
			Verdict: &rollout.Verdict{Gate: "probe", Result: rollout.Fail, Reason: "UNAVAILABLE"}},
		{Seq: 4, Time: at(3), Kind: rollout.EventRolledBack, Run: 1, Step: -1, Phase: rollout.RolledBack, Commit: "c2"},
		{Seq: 5, Time: at(4), Kind: rollout.EventStarted, Run: 2, Step: -1, Phase: rollout.Progressing, Actor: "ann"},
		{Seq: 6, Time: at(5), Kind: rollout.EventPromoted, Run: 2, Step: 0, Actor: "ann"},
		{Seq: 7, Time: at(6), Kind: rollout.EventStep, Run: 2, Step: 1, Weights: rollout.CanaryAt(40), Commit: "c3", Actor: "ann"},
		{Seq: 8, Time: at(7), Kind: rollout.EventRolledBack, Run: 2, Step: -1, Phase: rollout.RolledBack, Commit: "c4",
			Actor: "ann", Reason: "errors in the logs"},
	}
	evs := make([]rollout.Event, len(old))
	for i, ev := range old {
		evs[len(old)-1-i] = ev
	}
	return evs
}

func TestChartRunsAndMarks(t *testing.T) {
	c := newChart(twoRuns(), t0.Add(8*time.Minute), fullChart, func(uint64) string { return "#" })
	type line struct{ Class, Label string }
	var got []line
	for _, b := range append(c.Runs, c.Marks...) {
		got = append(got, line{b.Class, b.Label})
	}
	want := []line{{"run", "run 2"}, {"mark rolled-back", "rollback"}, {"mark promoted", "promote"}, {"mark rolled-back", "undo"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("boundaries (-want +got):\n%s", diff)
	}
	if c.Runs[0].X <= c.Marks[0].X || c.Runs[0].X >= c.Marks[1].X {
		t.Errorf("run 2 begins at x=%g, want between the rollback (%g) and the promotion (%g)", c.Runs[0].X, c.Marks[0].X, c.Marks[1].X)
	}
	if !strings.Contains(c.Marks[2].Title, "by ann: errors in the logs") {
		t.Errorf("the undo's title %q does not say who and why", c.Marks[2].Title)
	}
}

func TestVerdictShapesDiffer(t *testing.T) {
	seen := map[string]rollout.Result{}
	for _, r := range []rollout.Result{rollout.Pass, rollout.Fail, rollout.Inconclusive, rollout.Error} {
		d := verdictShape(r, 10, 10)
		if other, dup := seen[d]; dup {
			t.Errorf("%s and %s share the shape %q", r, other, d)
		}
		seen[d] = r
	}
}

func TestBlocked(t *testing.T) {
	failed := rollout.Event{Kind: rollout.EventMoveFailed, Message: `preflight before the first traffic step: virtualservice default/grpc-vs not found`}
	verdict := rollout.Event{Kind: rollout.EventVerdict}
	step := rollout.Event{Kind: rollout.EventStep}
	for _, tc := range []struct {
		name string
		ro   Rollout
		evs  []rollout.Event
		want string
	}{
		{"newest move failed", Rollout{Phase: rollout.Idle}, []rollout.Event{verdict, failed, step}, failed.Message},
		{"a step since", Rollout{Phase: rollout.Progressing}, []rollout.Event{step, failed}, ""},
		{"stuck", Rollout{Phase: rollout.Progressing, Stuck: &rollout.Condition{Type: rollout.ConditionStuck, Reason: "no data for 10m"}}, nil, "no data for 10m"},
		{"done", Rollout{Phase: rollout.RolledBack}, []rollout.Event{failed}, ""},
	} {
		if got := blocked(tc.ro, tc.evs); got != tc.want {
			t.Errorf("%s: blocked = %q, want %q", tc.name, got, tc.want)
		}
	}
	src := sampleSource()
	src.add(Rollout{Name: "lost", Phase: rollout.Progressing, Steps: 3, Stable: "v1", Canary: "v2"}, failed)
	url := newTestServer(t, src, "", nil)
	for _, path := range []string{"/", "/rollouts/lost"} {
		_, body := call(t, "GET", url+path, "", "")
		if !strings.Contains(string(body), `<span class="badge stuck"`) || !strings.Contains(string(body), "virtualservice default/grpc-vs not found") {
			t.Errorf("%s has no stuck badge with the reason for rollout lost", path)
		}
	}
}

func TestScriptAllowedByHash(t *testing.T) {
	url := newTestServer(t, sampleSource(), "", nil)
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sum := sha256.Sum256([]byte(refreshScript))
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy %q does not allow the refresh script by its hash and its fetches to this origin", csp)
	}
	if strings.Contains(csp, "unsafe-inline'; script") || strings.Contains(csp, "script-src 'unsafe") {
		t.Errorf("Content-Security-Policy %q allows any inline script", csp)
	}
}
