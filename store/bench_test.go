package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// BenchmarkAppend measures history appends: one event per fsync'd transaction, and many.
func BenchmarkAppend(b *testing.B) {
	for _, perTx := range []int{1, 100, 1000} {
		b.Run(map[int]string{1: "1-per-tx", 100: "100-per-tx", 1000: "1000-per-tx"}[perTx], func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "canaryd.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			evs := make([]rollout.Event, perTx)
			for i := range evs {
				evs[i] = event(i)
			}
			st := rollout.State{Rollout: "a"}
			b.ResetTimer()
			for b.Loop() {
				if err := db.Save(st, evs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*perTx)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkHistoryNewest100 reads the newest 100 events of a rollout whose history holds
// 1,000,000 events. The file is built once per run (without fsync) in a temp dir.
func BenchmarkHistoryNewest100(b *testing.B) {
	const total, batch = 1_000_000, 10_000
	path := filepath.Join(b.TempDir(), "big.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	evs := make([]rollout.Event, batch)
	for i := range evs {
		evs[i] = event(i)
	}
	for n := 0; n < total; n += batch {
		if err := db.Append("big", evs...); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Save(rollout.State{Rollout: "small"}, evs[:10]...); err != nil {
		b.Fatal(err)
	}
	db.Close()
	db, err = Open(path, Options{SkipCheck: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.ResetTimer()
	for b.Loop() {
		got, err := db.History("big", 0, 100)
		if err != nil || len(got) != 100 || got[0].Seq != total {
			b.Fatalf("got %d events (newest %+v), %v", len(got), got[0], err)
		}
	}
	if fi, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
	}
}
