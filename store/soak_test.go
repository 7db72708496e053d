package store

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// BenchmarkSoak writes 30 days of history for 100 rollouts checked every second, in
// compressed time: the clock is simulated, and each rollout's checks of ten simulated
// minutes are saved in one transaction. Each rollout has two gates; a gate's verdict
// changes once a minute (a new reason) and repeats in between, as a healthy canary's do,
// and a step event ends every simulated hour. Retention runs with the defaults every
// simulated hour. It reports the store's file size at the end and its largest size along
// the way, which must stay flat once a week of verdicts is held.
var soakDays = flag.Int("soak.days", 30, "simulated days BenchmarkSoak writes")

func BenchmarkSoak(b *testing.B) {
	days := time.Duration(*soakDays)
	const (
		rollouts    = 100
		block       = 10 * time.Minute // one transaction per rollout per block
		changeEvery = 60               // checks between distinct verdicts
	)
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "soak.db")
		db, err := Open(path, Options{NoSync: true, SkipCheck: true})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		evs := make([]rollout.Event, 0, 2*int(block/time.Second)+1)
		var peak, week int64
		written := 0
		for now := start; now.Before(start.Add(days * 24 * time.Hour)); now = now.Add(block) {
			for r := range rollouts {
				evs = soakBlock(evs[:0], now, block, changeEvery)
				written += len(evs)
				st := rollout.State{Rollout: fmt.Sprintf("r%03d", r), Phase: rollout.Progressing, Updated: now}
				if err := db.Save(st, evs...); err != nil {
					b.Fatal(err)
				}
			}
			if now.Sub(start)%time.Hour == 0 {
				if _, err := db.Prune(now, Retention{}); err != nil {
					b.Fatal(err)
				}
				size := fileSize(b, path)
				peak = max(peak, size)
				if now.Sub(start) == 8*24*time.Hour {
					week = size
				}
			}
		}
		kept, err := db.Len("r000")
		if err != nil {
			b.Fatal(err)
		}
		size := fileSize(b, path)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(size)/(1<<20), "MiB-at-30d")
		b.ReportMetric(float64(week)/(1<<20), "MiB-at-8d")
		b.ReportMetric(float64(peak)/(1<<20), "MiB-peak")
		b.ReportMetric(float64(kept), "events-kept/rollout")
		b.ReportMetric(float64(written)/rollouts, "checks-written/rollout")
	}
}

// soakBlock appends one block's checks of two gates, one a second, and a step event at the
// end of each hour.
func soakBlock(evs []rollout.Event, from time.Time, block time.Duration, changeEvery int) []rollout.Event {
	evidence := []rollout.Evidence{{Query: "sum(rate(istio_requests_total[1m]))", Value: 0.999, Threshold: "min 0.99", Samples: 60}}
	reason, minute := "", int64(-1)
	for s := range int(block / time.Second) {
		at := from.Add(time.Duration(s) * time.Second)
		if m := at.Unix() / int64(changeEvery); m != minute {
			minute, reason = m, fmt.Sprintf("canary: %d is within min 0.99", m)
		}
		for _, gate := range [...]string{"probe", "grpc-success-rate"} {
			evs = append(evs, rollout.Event{Time: at, Kind: rollout.EventVerdict, Run: 1, Step: 1,
				Weights: rollout.CanaryAt(40), Phase: rollout.Progressing,
				Verdict: &rollout.Verdict{Gate: gate, Result: rollout.Pass, Time: at, Reason: reason, Evidence: evidence}})
		}
	}
	if end := from.Add(block); end.Truncate(time.Hour).Equal(end) {
		evs = append(evs, rollout.Event{Time: end, Kind: rollout.EventStep, Run: 1, Step: 1, Weights: rollout.CanaryAt(40)})
	}
	return evs
}

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
