package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func verdict(gate string, result rollout.Result, reason string, at time.Time) rollout.Event {
	return rollout.Event{Time: at, Kind: rollout.EventVerdict, Run: 1, Step: 1, Weights: rollout.CanaryAt(40),
		Phase: rollout.Progressing, Verdict: &rollout.Verdict{Gate: gate, Result: result, Reason: reason, Time: at}}
}

// TestFoldIdenticalVerdicts: consecutive identical verdicts of a gate are one event with a
// count and the last time, across saves and with other gates in between; a different
// verdict or any other event starts a new one.
func TestFoldIdenticalVerdicts(t *testing.T) {
	db := openTest(t)
	st := rollout.State{Rollout: "a"}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for s := range 10 { // two gates, checked every second, always the same answers
		if err := db.Save(st, verdict("probe", rollout.Pass, "3 of 3", at(s)), verdict("rate", rollout.Pass, "ok", at(s))); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.Save(st, verdict("probe", rollout.Fail, "0 of 3", at(10))))
	must(db.Save(st, verdict("probe", rollout.Fail, "0 of 3", at(11))))
	must(db.Save(st, rollout.Event{Kind: rollout.EventStep, Time: at(12), Run: 1, Step: 2}))
	must(db.Save(st, verdict("probe", rollout.Fail, "0 of 3", at(13))))
	evs, err := db.History("a", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		kind  rollout.EventKind
		gate  string
		count int
		until time.Time
	}
	var got []row
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		r := row{kind: ev.Kind, count: ev.Count, until: ev.Until}
		if ev.Verdict != nil {
			r.gate = ev.Verdict.Gate + "=" + string(ev.Verdict.Result)
		}
		got = append(got, r)
	}
	want := []row{
		{rollout.EventVerdict, "probe=pass", 10, at(9)},
		{rollout.EventVerdict, "rate=pass", 10, at(9)},
		{rollout.EventVerdict, "probe=fail", 2, at(11)},
		{kind: rollout.EventStep},
		{rollout.EventVerdict, "probe=fail", 0, time.Time{}},
	}
	if len(got) != len(want) {
		t.Fatalf("history %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].kind != want[i].kind || got[i].gate != want[i].gate || got[i].count != want[i].count || !got[i].until.Equal(want[i].until) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestPruneByAgeAndCount: verdicts older than a week and beyond the count go, older other
// events stay for a year; states are kept.
func TestPruneByAgeAndCount(t *testing.T) {
	db := openTest(t)
	st := rollout.State{Rollout: "a", Phase: rollout.Progressing}
	day := 24 * time.Hour
	var evs []rollout.Event
	for d := range 30 { // one distinct verdict and one step a day for 30 days
		at := t0.Add(time.Duration(d) * day)
		evs = append(evs, verdict("probe", rollout.Pass, at.String(), at), rollout.Event{Kind: rollout.EventStep, Time: at, Run: 1})
	}
	if err := db.Save(st, evs...); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(29*day + time.Hour)
	n, err := db.Prune(now, Retention{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 23 { // days 0..22 are more than a week old at day 29 plus an hour
		t.Errorf("pruned %d events, want 23 verdicts", n)
	}
	left, _ := db.History("a", 0, 1000)
	verdicts := 0
	for _, ev := range left {
		if ev.Kind == rollout.EventVerdict {
			verdicts++
			if now.Sub(ev.Time) > DefaultVerdictAge {
				t.Errorf("kept a verdict from %s", ev.Time)
			}
		}
	}
	if verdicts != 7 || len(left) != 37 {
		t.Errorf("%d events left, %d verdicts; want 37 and 7", len(left), verdicts)
	}
	if n, err := db.Prune(now, Retention{MaxVerdicts: 3, MaxEvents: 5}); err != nil || n != 4+25 {
		t.Errorf("prune by count: %d, %v; want 29", n, err)
	}
	if _, ok, _ := db.State("a"); !ok {
		t.Error("pruning dropped the state")
	}
}

// TestRetentionDoesNotBlockWrites: saves go on while a background pass deletes a large
// history in batches.
func TestRetentionDoesNotBlockWrites(t *testing.T) {
	db := openTest(t)
	st := rollout.State{Rollout: "a"}
	batch := make([]rollout.Event, 1000)
	for i := range 20 {
		for j := range batch {
			at := t0.Add(time.Duration(i*1000+j) * time.Second)
			batch[j] = verdict("probe", rollout.Pass, at.String(), at)
		}
		if err := db.Save(st, batch...); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = db.RunRetention(ctx, Retention{MaxVerdicts: 100}, time.Hour, nil, nil)
	})
	for i := range 50 {
		at := time.Now().Add(time.Duration(i) * time.Millisecond)
		if err := db.Save(st, verdict("rate", rollout.Pass, at.String(), at)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
	if n, _ := db.Len("a"); n > 20050 {
		t.Errorf("%d events after retention, want fewer", n)
	}
}
