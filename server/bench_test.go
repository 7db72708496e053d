package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/store"
)

// storeSource is a Source over a real bbolt store, as the daemon's is: states and history
// from the store, nothing else. It is the benchmarks' stand-in for the wired daemon.
type storeSource struct{ db *store.DB }

func (s storeSource) view(st rollout.State) Rollout {
	return Rollout{Name: st.Rollout, Phase: st.Phase, Run: st.Run, Step: st.Step + 1, Steps: 3, Weights: st.Weights,
		Stable: "v1", Canary: "v2", LastVerdict: st.LastVerdict, Commit: st.Commit, Message: st.Message,
		NextTick: st.Updated.Add(30 * time.Second), Updated: st.Updated}
}

func (s storeSource) Rollouts(context.Context) ([]Rollout, error) {
	sts, err := s.db.States()
	if err != nil {
		return nil, err
	}
	out := make([]Rollout, len(sts))
	for i, st := range sts {
		out[i] = s.view(st)
	}
	return out, nil
}

func (s storeSource) Rollout(_ context.Context, name string) (Rollout, error) {
	st, ok, err := s.db.State(name)
	if err != nil || !ok {
		return Rollout{}, cmpErr(err, ErrNotFound)
	}
	return s.view(st), nil
}

func (s storeSource) History(_ context.Context, name string, before uint64, limit int) ([]rollout.Event, error) {
	return s.db.History(name, before, limit)
}

func (storeSource) Act(context.Context, string, string, string, string) error { return ErrRefused }
func (storeSource) Ready(context.Context) error                               { return nil }

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// fillStore writes rollouts rollouts with events events each, every one a verdict with its
// evidence, like a long-running daemon's history.
func fillStore(b *testing.B, rollouts, events int) *store.DB {
	b.Helper()
	db, err := store.Open(filepath.Join(b.TempDir(), "canaryd.db"), store.Options{NoSync: true, SkipCheck: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < rollouts; i += 2 {
				if err := fillRollout(db, fmt.Sprintf("svc-%04d", i), events, start); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return db
}

func fillRollout(db *store.DB, name string, events int, start time.Time) error {
	const batch = 1000
	v := &rollout.Verdict{Gate: "prometheus", Result: rollout.Pass, Time: start, Evidence: []rollout.Evidence{{
		Query: `sum(rate(istio_requests_total{destination_version="v2",grpc_response_status="0"}[1m])) / sum(rate(istio_requests_total{destination_version="v2"}[1m]))`,
		Value: 0.999, Threshold: ">= 0.99", Samples: 60}}}
	st := rollout.State{Rollout: name, Phase: rollout.Progressing, Run: 1, Step: 1, Weights: rollout.CanaryAt(40),
		Commit: "4f1c2a9d0e7b5c3a1f2e4d6c8b0a9e7d5c3b1a2f", Message: "step 2/3 at 60/40", LastVerdict: v, Updated: start}
	evs := make([]rollout.Event, 0, batch)
	for n := 0; n < events; n += batch {
		evs = evs[:0]
		for j := n; j < min(n+batch, events); j++ {
			t := start.Add(time.Duration(j) * 30 * time.Second)
			evs = append(evs, rollout.Event{Time: t, Rollout: name, Kind: rollout.EventVerdict, Run: 1, Step: 1,
				Weights: st.Weights, Phase: st.Phase, Verdict: v, Commit: st.Commit})
		}
		if err := db.Save(st, evs...); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkAPI serves 1,000 rollouts with 1,000,000 history events from a real store over
// real HTTP: GET /api/v1/rollouts flat out (req/s) and at a steady 500 req/s (p50/p99
// latency), a 1,000-event history page, and the status page.
func BenchmarkAPI(b *testing.B) {
	db := fillStore(b, 1000, 1000)
	srv := httptest.NewServer(New(Options{Source: storeSource{db}}).Handler())
	b.Cleanup(srv.Close)
	uncached := httptest.NewServer(New(Options{Source: storeSource{db}, ListCacheTTL: -1}).Handler())
	b.Cleanup(uncached.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	get := func(base, path string) error {
		resp, err := client.Get(base + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		return nil
	}
	for _, tc := range []struct{ name, base, path string }{
		{"list", srv.URL, "/api/v1/rollouts"},
		{"list uncached", uncached.URL, "/api/v1/rollouts"},
		{"history 1000", srv.URL, "/api/v1/rollouts/svc-0500/history?limit=1000"},
		{"one rollout", srv.URL, "/api/v1/rollouts/svc-0500"},
		{"page", srv.URL, "/"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(2)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := get(tc.base, tc.path); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
	for _, tc := range []struct{ name, base string }{{"list at 500 req/s", srv.URL}} {
		b.Run(tc.name, func(b *testing.B) {
			lat := steadyLoad(b, 500, 4*time.Second, func() error { return get(tc.base, "/api/v1/rollouts") })
			b.ReportMetric(percentile(lat, 50), "p50-ms")
			b.ReportMetric(percentile(lat, 99), "p99-ms")
			b.ReportMetric(float64(len(lat))/4, "achieved-req/s")
		})
	}
}

// steadyLoad sends rate requests a second for d, each at its scheduled time whether or not
// earlier ones have finished (an open loop: a slow server cannot slow the load down), and
// returns each request's latency counted from when it was due, so that requests the
// load generator itself sent late still count their wait.
func steadyLoad(b *testing.B, rate int, d time.Duration, do func() error) []time.Duration {
	b.Helper()
	var (
		mu  sync.Mutex
		lat []time.Duration
		wg  sync.WaitGroup
	)
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	t := time.NewTicker(interval)
	defer t.Stop()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < total; {
		<-t.C
		for due := min(total, int(time.Since(start)/interval)+1); sent < due; sent++ {
			at := start.Add(time.Duration(sent) * interval)
			wg.Go(func() {
				err := do()
				took := time.Since(at)
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, took)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	b.StopTimer()
	return lat
}

// percentile returns the p-th percentile of lat in milliseconds.
func percentile(lat []time.Duration, p int) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return float64(s[i]) / float64(time.Millisecond)
}
