package gateway

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/traffic"
)

// BenchmarkGateway measures one SayHello through the gateway at 60/40 and, for
// comparison, straight to a greeter, from 8 concurrent callers; it reports the latency's
// p50 and p99 in ms and the calls per second.
func BenchmarkGateway(b *testing.B) {
	wd := newWorld(b, rollout.CanaryAt(40), 0, 9)
	direct := func() string {
		_, addr := startGreeter(b, "grpc-helloworld-py-v1-direct", 0)
		return addr
	}()
	for _, target := range []struct {
		name string
		cc   func(b *testing.B) *grpc.ClientConn
	}{
		{"through-gateway", func(*testing.B) *grpc.ClientConn { return wd.cc }},
		{"direct", func(b *testing.B) *grpc.ClientConn { return dial(b, direct) }},
	} {
		b.Run(target.name, func(b *testing.B) {
			cc := target.cc(b)
			var mu sync.Mutex
			var lat []time.Duration
			start := time.Now()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if _, err := traffic.SayHello(b.Context(), cc, "Jack"); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			slices.Sort(lat)
			if len(lat) == 0 {
				return
			}
			ms := func(q float64) float64 {
				return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.5), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "calls/s")
		})
	}
}

func dial(b *testing.B, addr string) *grpc.ClientConn {
	b.Helper()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		b.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	return cc
}
