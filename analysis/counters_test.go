package analysis

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/canarydio/canaryd/rollout"
)

func series(version, status string, v float64) sample {
	return sample{labels: model.Metric{"destination_version": model.LabelValue(version),
		"grpc_response_status": model.LabelValue(status)}, value: v}
}

func TestCountersTakeIncreases(t *testing.T) {
	c := newCounters()
	now := time.Unix(0, 0)
	steps := []struct {
		name    string
		samples []sample
		want    []float64
	}{
		{"the first look is the baseline", []sample{series("v2", "0", 100)}, []float64{0}},
		{"an increase", []sample{series("v2", "0", 130)}, []float64{30}},
		{"a new series started at 0", []sample{series("v2", "0", 140), series("v2", "14", 2)}, []float64{10, 2}},
		{"a reset counts the new value", []sample{series("v2", "0", 5), series("v2", "14", 3)}, []float64{5, 1}},
		{"a series missing from a look is remembered", []sample{series("v2", "0", 9)}, []float64{4}},
		{"and counted from where it was when it returns", []sample{series("v2", "0", 9), series("v2", "14", 7)}, []float64{0, 4}},
	}
	for _, s := range steps {
		now = now.Add(time.Second)
		if diff := cmp.Diff(s.want, c.look(s.samples, now)); diff != "" {
			t.Errorf("%s: increases (-want +got):\n%s", s.name, diff)
		}
	}
}

func TestTrackerStartsAfreshOnANewStep(t *testing.T) {
	var tr tracker
	now := time.Unix(100, 0)
	key := rollout.StepKey{Rollout: "r", Run: 1, Step: 1, Since: now}
	var first *tally
	tr.with(key, "g", now, time.Minute, func(e *tracked) { first = e.tally; e.counters.look([]sample{series("v2", "0", 1)}, now) })
	tr.with(key, "g", now.Add(time.Second), time.Minute, func(e *tracked) {
		if e.tally != first {
			t.Error("the same step got a new tally")
		}
	})
	key.Step = 2
	tr.with(key, "g", now.Add(2*time.Second), time.Minute, func(e *tracked) {
		if e.tally == first {
			t.Error("a new step kept the old tally")
		}
		if !e.counters.looked {
			t.Error("a new step dropped the counters: the increase since the last look would be lost")
		}
	})
	tr.with(key, "g", now.Add(time.Hour), time.Minute, func(e *tracked) {
		if e.counters.looked {
			t.Error("counters an hour old were kept as the baseline")
		}
	})
}

func TestCountsNameTheDominantCode(t *testing.T) {
	tl := &tally{}
	add(&tl.canary, series("v2", "0", 0).labels, 389)
	add(&tl.canary, series("v2", "14", 0).labels, 31)
	flagged := series("v2", "14", 0).labels.Clone()
	flagged["response_flags"] = "UH"
	add(&tl.canary, flagged, 5)
	add(&tl.stable, series("v1", "0", 0).labels, 608)
	add(&tl.stable, series("v1", "14", 0).labels, 2)
	want := "UNAVAILABLE 31 of 425 canary calls, stable 2 of 610 (all failures: canary 36, stable 2)"
	if got := countsText(tl); got != want {
		t.Errorf("countsText = %q, want %q", got, want)
	}
	if tl.canary.Codes["UNAVAILABLE UH"] != 5 {
		t.Errorf("codes = %v, want UNAVAILABLE UH counted apart", tl.canary.Codes)
	}
}

func TestHistQuantile(t *testing.T) {
	b := map[float64]float64{10: 50, 100: 90, 250: 100, math.Inf(1): 100}
	if q, n := histQuantile(0.99, b); n != 100 || math.Abs(q-235) > 1e-9 {
		t.Errorf("histQuantile(0.99) = %v, %v; want 235, 100", q, n)
	}
	if q, n := histQuantile(0.5, map[float64]float64{}); !math.IsNaN(q) || n != 0 {
		t.Errorf("empty histogram: %v, %v; want NaN, 0", q, n)
	}
}
