package istio_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/pace/limits"
	"github.com/canarydio/canaryd/rollout"
)

// BenchmarkSetWeights measures one weight change (get, update carrying the
// resourceVersion) on the real API server, without client-side
// rate limits, and reports its p50 and p99 latency.
func BenchmarkSetWeights(b *testing.B) {
	f := newFixture(b, nil)
	r := f.router(b, nil) // the harness config: no client-side limit
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := rollout.CanaryAt(40 * (1 - i%2))
		start := time.Now()
		if err := r.SetWeights(ctx, f.doc, w); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkManyVirtualServices changes the weights of many VirtualServices
// from one process (16 workers sharing one Router) under three client-side
// rate limits: none, the ones canaryd ships (limits.DefaultQPS/DefaultBurst)
// and client-go's defaults (5 QPS, burst 10). Each change is two requests,
// so the limits, not the API server, set the pace; client-go's defaults run
// on 100 objects (1,000 would take ten minutes) and report the same rate.
func BenchmarkManyVirtualServices(b *testing.B) {
	f := newFixture(b, nil)
	const total = 1000
	docs := createMany(b, f, total)
	cases := []struct {
		name       string
		qps        float32
		burst, n   int
		fromConfig bool
	}{
		{name: "limits=none", qps: -1, n: total},
		{name: fmt.Sprintf("limits=canaryd-%dqps-burst%d", limits.DefaultQPS, limits.DefaultBurst), n: total},
		{name: fmt.Sprintf("limits=client-go-default-%dqps-burst%d", int(rest.DefaultQPS), rest.DefaultBurst),
			qps: rest.DefaultQPS, burst: rest.DefaultBurst, n: 100, fromConfig: true},
	}
	// Every pass flips the weights of all objects, so each change is a real
	// update (get, update), never an idempotent no-op.
	flip := 0
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			cfg := rest.CopyConfig(f.env.Config)
			cfg.QPS, cfg.Burst = 0, 0 // let Options decide
			opts := istio.Options{QPS: tc.qps, Burst: tc.burst}
			if tc.fromConfig {
				cfg.QPS, cfg.Burst, opts = tc.qps, tc.burst, istio.Options{}
			}
			r, err := istio.NewRouter(cfg, opts)
			if err != nil {
				b.Fatal(err)
			}
			var took time.Duration
			for i := 0; i < b.N; i++ {
				flip++
				w := rollout.CanaryAt(40 * (flip % 2))
				start := time.Now()
				changeAll(b, r, docs[:tc.n], w)
				took += time.Since(start)
			}
			perSec := float64(tc.n*b.N) / took.Seconds()
			b.ReportMetric(perSec, "changes/s")
			b.ReportMetric(total/perSec, "s/1000vs")
		})
	}
}

// createMany creates n copies of grpc-vs and returns a rollout for each.
func createMany(b *testing.B, f *fixture, n int) []*rollout.Document {
	b.Helper()
	base := f.vs(b)
	objs := make([]*unstructured.Unstructured, n)
	docs := make([]*rollout.Document, n)
	for i := range objs {
		o := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": base.GetAPIVersion(), "kind": base.GetKind(),
			"spec": base.DeepCopy().Object["spec"],
		}}
		o.SetNamespace(f.ns)
		o.SetName(fmt.Sprintf("vs-%04d", i))
		objs[i] = o
		d := *f.doc
		d.Spec.VirtualService.Name = o.GetName()
		docs[i] = &d
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for part := range 8 {
		wg.Go(func() {
			for i := part; i < n; i += 8 {
				if _, err := f.client.Create(context.Background(), objs[i:i+1], false); err != nil {
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
	return docs
}

// changeAll sets w on every rollout with 16 workers.
func changeAll(b *testing.B, r *istio.Router, docs []*rollout.Document, w rollout.Weights) {
	b.Helper()
	work := make(chan *rollout.Document)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for d := range work {
				if err := r.SetWeights(context.Background(), d, w); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, d := range docs {
		work <- d
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}
