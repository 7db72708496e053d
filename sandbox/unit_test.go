package sandbox

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/gateway"
	"github.com/canarydio/canaryd/sandbox/traffic"
	"github.com/canarydio/canaryd/server"
	"github.com/canarydio/canaryd/test/golden"
)

func TestParseLog(t *testing.T) {
	out := "aaaa\x1fcanaryd <canaryd@example.com>\x1f2026-11-27T17:40:15+00:00\x1fgrpc-helloworld-py: step 2/3\x1f" +
		"Rollout: grpc-helloworld-py\nRollout-Step: 2/3\nRollout-Weights: v1=60,v2=40\n\x1e\n" +
		"bbbb\x1fSandbox Seed <seed@example.com>\x1f2026-11-27T17:40:10+00:00\x1fSeed\x1f\x1e\n"
	got, err := parseLog(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []Commit{
		{SHA: "aaaa", Author: "canaryd <canaryd@example.com>", Time: time.Date(2026, 11, 27, 17, 40, 15, 0, time.UTC),
			Subject: "grpc-helloworld-py: step 2/3", Trailers: map[string]string{
				"Rollout": "grpc-helloworld-py", "Rollout-Step": "2/3", "Rollout-Weights": "v1=60,v2=40"}},
		{SHA: "bbbb", Author: "Sandbox Seed <seed@example.com>", Time: time.Date(2026, 11, 27, 17, 40, 10, 0, time.UTC),
			Subject: "Seed", Trailers: map[string]string{}},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); d != "" {
		t.Errorf("parseLog (-want +got):\n%s", d)
	}
	if !got[0].ByCanaryd() || got[1].ByCanaryd() {
		t.Error("ByCanaryd")
	}
	if _, err := parseLog("only\x1ftwo\x1e"); err == nil {
		t.Error("a malformed record parsed")
	}
}

func FuzzParseLog(f *testing.F) {
	f.Add("aaaa\x1fa <b>\x1f2026-11-27T17:40:15Z\x1fs\x1fK: v\n\x1e")
	f.Add("\x1e\x1e")
	f.Fuzz(func(t *testing.T, out string) {
		log, err := parseLog(out)
		if err == nil {
			for _, c := range log {
				_ = c.Short() // must not panic on short SHAs
			}
		}
	})
}

// obs builds an observation whose gateway follows head at w, in phase.
func obs(phase rollout.Phase, head string, w rollout.Weights) Observation {
	return Observation{
		Rollout: &server.Rollout{Name: RolloutName, Phase: phase, Weights: w},
		Gateway: gateway.Status{Stable: w.Stable, Canary: w.Canary, Commit: head},
	}
}

func canarydCommit(sha, weights, reason string) Commit {
	c := Commit{SHA: sha, Author: "canaryd <canaryd@example.com>", Trailers: map[string]string{
		"Rollout": RolloutName, "Rollout-Weights": weights}}
	if reason != "" {
		c.Trailers["Rollout-Reason"] = reason
	}
	return c
}

func TestScenarioEnds(t *testing.T) {
	seed := Commit{SHA: "s0", Author: seedAuthor, Trailers: map[string]string{}}
	at40 := canarydCommit("c40", "v1=60,v2=40", "")
	at100 := canarydCommit("c100", "v1=0,v2=100", "")
	back := canarydCommit("cback", "v1=100,v2=0", "gate failed")
	revert := Commit{SHA: "rev", Author: PersonName + " <" + PersonEmail + ">", Trailers: map[string]string{}}
	type want struct{ done, ok bool }
	tests := []struct {
		name   string
		sc     Scenario
		revert string
		obs    Observation
		log    []Commit
		want   want
	}{
		{"success: progressing", Success, "", obs(rollout.Progressing, "c40", rollout.CanaryAt(40)), []Commit{at40, seed}, want{}},
		{"success: gateway lags", Success, "", obs(rollout.Succeeded, "c40", rollout.CanaryAt(40)), []Commit{at100, at40, seed}, want{}},
		{"success", Success, "", obs(rollout.Succeeded, "c100", rollout.CanaryAt(100)), []Commit{at100, at40, seed}, want{true, true}},
		{"success: skipped 40", Success, "", obs(rollout.Succeeded, "c100", rollout.CanaryAt(100)), []Commit{at100, seed}, want{true, false}},
		{"success: rolled back", Success, "", obs(rollout.RolledBack, "cback", rollout.CanaryAt(0)), []Commit{back, at40, seed}, want{true, false}},
		{"fail", Fail, "", obs(rollout.RolledBack, "cback", rollout.CanaryAt(0)), []Commit{back, at40, seed}, want{true, true}},
		{"fail: no reason", Fail, "", obs(rollout.RolledBack, "c0", rollout.CanaryAt(0)), []Commit{{SHA: "c0", Trailers: map[string]string{}}, at40}, want{true, false}},
		{"fail: reached 100", Fail, "", obs(rollout.RolledBack, "cback", rollout.CanaryAt(0)), []Commit{back, at100, at40}, want{true, false}},
		{"fail: succeeded", Fail, "", obs(rollout.Succeeded, "c100", rollout.CanaryAt(100)), []Commit{at100, at40}, want{true, false}},
		{"revert: too late", Revert, "", obs(rollout.Succeeded, "c100", rollout.CanaryAt(100)), []Commit{at100, at40}, want{true, false}},
		{"revert: canaryd pushed after", Revert, "rev", obs(rollout.Progressing, "c100", rollout.CanaryAt(100)), []Commit{at100, revert, at40}, want{true, false}},
		{"revert: not yet overridden", Revert, "rev", obs(rollout.Progressing, "rev", rollout.CanaryAt(0)), []Commit{revert, at40}, want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &player{sc: tt.sc, revert: tt.revert, o: PlayOptions{Settle: time.Hour}}
			var done, ok bool
			var why string
			switch tt.sc {
			case Success:
				done, ok, why = p.endSuccess(tt.obs.Rollout.Phase, tt.obs, tt.log)
			case Fail:
				done, ok, why = p.endFail(tt.obs.Rollout.Phase, tt.obs, tt.log)
			default:
				done, ok, why = p.endRevert(tt.obs.Rollout.Phase, tt.obs, tt.log)
			}
			if (want{done, ok}) != tt.want {
				t.Errorf("done, ok = %v, %v (%q); want %+v", done, ok, why, tt.want)
			}
			if done && why == "" {
				t.Error("an end without a why")
			}
		})
	}
}

func TestRevertSettles(t *testing.T) {
	revert := Commit{SHA: "rev", Author: PersonName}
	p := &player{sc: Revert, revert: "rev", o: PlayOptions{Settle: time.Minute}}
	o := obs(rollout.Overridden, "rev", rollout.CanaryAt(0))
	if done, _, _ := p.endRevert(rollout.Overridden, o, []Commit{revert}); done {
		t.Fatal("done at the first look: it must watch for Settle first")
	}
	p.quiet = p.quiet.Add(-time.Hour) // as if the first look was an hour ago
	done, ok, why := p.endRevert(rollout.Overridden, o, []Commit{revert})
	if !done || !ok || !strings.Contains(why, "pushed nothing") {
		t.Errorf("after settling: %v, %v, %q", done, ok, why)
	}
}

var t0 = time.Date(2026, 11, 27, 17, 40, 0, 0, time.UTC)

func verdictEvent(sec int, gate string, res rollout.Result, reason string) rollout.Event {
	return rollout.Event{Time: t0.Add(time.Duration(sec) * time.Second), Kind: rollout.EventVerdict,
		Verdict: &rollout.Verdict{Gate: gate, Result: res, Reason: reason}}
}

// history is canaryd's history of a fail scenario, oldest first.
func history() []rollout.Event {
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	return []rollout.Event{
		{Time: at(0), Kind: rollout.EventStarted, Step: 0, Weights: rollout.CanaryAt(0)},
		{Time: at(0), Kind: rollout.EventStep, Step: 0, Weights: rollout.CanaryAt(0), Commit: "111111111111aaaa"},
		verdictEvent(1, "probe", rollout.Pass, "3 of 3 calls returned OK"),
		{Time: at(5), Kind: rollout.EventIntent, Step: 1, Weights: rollout.CanaryAt(40)},
		{Time: at(5), Kind: rollout.EventStep, Step: 1, Weights: rollout.CanaryAt(40), Commit: "222222222222bbbb"},
		verdictEvent(6, "grpc-success-rate", rollout.Fail, "canary: 0.8 is below min 0.95"),
		verdictEvent(6, "probe", rollout.Pass, "3 of 3 calls returned OK"),
		verdictEvent(7, "grpc-success-rate", rollout.Fail, "canary: 0.79 is below min 0.95"),
		{Time: at(7), Kind: rollout.EventRolledBack, Step: 1, Weights: rollout.CanaryAt(0), Commit: "333333333333cccc",
			Reason: "gate grpc-success-rate failed 2 checks in a row"},
	}
}

func TestSteps(t *testing.T) {
	evs := history()
	slices.Reverse(evs) // the API's order: newest first
	got := Steps(evs)
	want := []StepReport{
		{Time: t0, Kind: rollout.EventStarted, Step: 1, Weights: rollout.CanaryAt(0)},
		{Time: t0, Kind: rollout.EventStep, Step: 1, Weights: rollout.CanaryAt(0), Commit: "111111111111aaaa"},
		{Time: t0.Add(5 * time.Second), Kind: rollout.EventStep, Step: 2, Weights: rollout.CanaryAt(40), Commit: "222222222222bbbb",
			Evidence: []string{"probe pass: 3 of 3 calls returned OK"}},
		{Time: t0.Add(7 * time.Second), Kind: rollout.EventRolledBack, Step: 2, Weights: rollout.CanaryAt(0), Commit: "333333333333cccc",
			Reason:   "gate grpc-success-rate failed 2 checks in a row",
			Evidence: []string{"grpc-success-rate fail: canary: 0.79 is below min 0.95", "probe pass: 3 of 3 calls returned OK"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Steps (-want +got):\n%s", d)
	}
}

func TestVerdictLine(t *testing.T) {
	tests := []struct {
		v    rollout.Verdict
		want string
	}{
		{rollout.Verdict{Gate: "probe", Result: rollout.Pass, Reason: "3 of 3"}, "probe pass: 3 of 3"},
		{rollout.Verdict{Gate: "grpc-success-rate", Result: rollout.Fail, Evidence: []rollout.Evidence{{Value: 0.8, Threshold: ">= 0.95"}}},
			"grpc-success-rate fail: 0.8 vs >= 0.95"},
		{rollout.Verdict{Gate: "probe", Result: rollout.Error, Evidence: []rollout.Evidence{{Code: "UNAVAILABLE"}}}, "probe error: UNAVAILABLE"},
		{rollout.Verdict{Gate: "x", Result: rollout.Inconclusive}, "x inconclusive"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := VerdictLine(&tt.v); got != tt.want {
				t.Errorf("VerdictLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBar(t *testing.T) {
	for _, c := range []int{0, 40, 100} {
		b := []rune(Bar(c))
		light := strings.Count(string(b), "░")
		if len(b) != barWidth || light != c*barWidth/100 {
			t.Errorf("Bar at %d: %q", c, string(b))
		}
	}
}

func TestRenderGolden(t *testing.T) {
	o := Observation{
		Time: t0, Scenario: Fail, V1: "grpc-helloworld-py-v1-aaaaa-bbbbb", V2: "grpc-helloworld-py-v2-ccccc-ddddd",
		Rollout: &server.Rollout{Name: RolloutName, Phase: rollout.Progressing, Run: 1, Step: 2, Steps: 3,
			Weights:     rollout.CanaryAt(40),
			LastVerdict: &rollout.Verdict{Gate: "grpc-success-rate", Result: rollout.Fail, Reason: "canary: 0.8 is below min 0.95"},
			Message:     "gate grpc-success-rate failed 1 check"},
		Gateway: gateway.Status{Stable: 60, Canary: 40, Commit: "222222222222bbbb"},
		Traffic: traffic.Snapshot{Recent: traffic.Counts{Calls: 100,
			ByInstance: map[string]uint64{"grpc-helloworld-py-v1-aaaaa-bbbbb": 58, "grpc-helloworld-py-v2-ccccc-ddddd": 34},
			ByCode:     map[string]uint64{"OK": 92, "Unavailable": 8}}},
		Head:  Commit{SHA: "222222222222bbbb", Author: "canaryd <canaryd@example.com>", Subject: "grpc-helloworld-py: step 2/3, canary v2 at 40%"},
		Notes: []string{"17:40:00 v2 now answers UNAVAILABLE on 20% of calls"},
	}
	var b bytes.Buffer
	for _, l := range Render(o, "http://127.0.0.1:8090/", "127.0.0.1:8080") {
		b.WriteString(l + "\n")
	}
	b.WriteString("---\n" + Line(o) + "\n")
	golden.Check(t, "testdata/view.golden", b.Bytes())
}

func TestSummaryGolden(t *testing.T) {
	evs := history()
	slices.Reverse(evs)
	r := Result{
		Scenario: Fail, OK: true, Why: "RolledBack at 40%", Phase: rollout.RolledBack, Weights: rollout.CanaryAt(0),
		Steps: Steps(evs), Duration: 9 * time.Second, Zone: time.UTC,
		Split: traffic.Counts{Calls: 455, ByCode: map[string]uint64{"OK": 440, "Unavailable": 15}},
		Log: []Commit{
			canarydCommit("333333333333cccc", "v1=100,v2=0", "gate grpc-success-rate failed 2 checks in a row"),
			canarydCommit("222222222222bbbb", "v1=60,v2=40", ""),
			{SHA: "000000000000ffff", Author: seedAuthor, Subject: "Seed", Trailers: map[string]string{}},
		},
	}
	for i := range r.Log {
		r.Log[i].Time = t0
		if r.Log[i].Subject == "" {
			r.Log[i].Subject = "step"
		}
	}
	var b bytes.Buffer
	r.WriteSummary(&b, "/tmp/demo/remote.git")
	golden.Check(t, "testdata/summary.golden", b.Bytes())
}
