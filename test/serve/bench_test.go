package serve_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// BenchmarkReaction measures how long canaryd takes from the moment v2 starts failing to
// canary weight 0 in the API server and in Git, with a 1 s scrape, a 1 s analysis interval
// and failureLimit 1: once with the success-rate gate and the probe, once with the probe
// alone. Each iteration builds a new world; run it with -benchtime=5x.
func BenchmarkReaction(b *testing.B) {
	for _, gates := range []string{"metrics+probe", "probe-only"} {
		b.Run(gates, func(b *testing.B) {
			var took []time.Duration
			for i := 0; i < b.N; i++ {
				took = append(took, reactOnce(b, gates))
			}
			slices.Sort(took)
			b.ReportMetric(took[len(took)/2].Seconds(), "median-s")
			b.ReportMetric(took[len(took)-1].Seconds(), "max-s")
		})
	}
}

func reactOnce(b *testing.B, gates string) time.Duration {
	// Each world is torn down before the next one starts.
	s := &scope{TB: b}
	defer s.close()
	w := newBenchWorld(s, gates)
	w.serve()
	w.eventually(60*time.Second, "40%", func() (bool, string) {
		g, c := w.gitWeights(), w.clusterWeights()
		return g.Canary == 40 && c.Canary == 40, g.String() + " " + c.String()
	})
	start := time.Now()
	w.v2.SetErrors(1, codes.Unavailable)
	w.eventually(30*time.Second, "canary 0 in Git and the cluster", func() (bool, string) {
		g, c := w.gitWeights(), w.clusterWeights()
		return g.Canary == 0 && c.Canary == 0, g.String() + " " + c.String()
	})
	return time.Since(start)
}

// newBenchWorld is newWorld with a spec tuned for reaction: a slow schedule (no step during
// the measurement), failureLimit 1, and the gates asked for.
func newBenchWorld(b testing.TB, gates string) *world {
	w := newWorldTB(b)
	spec := w.spec("")
	spec = strings.Replace(spec, `"@every 2s"`, `"@every 3s"`, 1)
	spec = strings.Replace(spec, "failureLimit: 2", "failureLimit: 1", 1)
	spec = strings.Replace(spec, "window: 10s", "window: 3s", 1)
	if gates == "probe-only" {
		i := strings.Index(spec, "    metrics:")
		j := strings.Index(spec, "  probe:")
		spec = spec[:i] + spec[j:]
	}
	work := filepath.Join(w.dir, "tune")
	w.git(w.dir, "clone", "-q", w.remote, work)
	if err := os.WriteFile(filepath.Join(work, "rollouts/grpc-helloworld-py.yaml"), []byte(spec), 0o644); err != nil {
		b.Fatal(err)
	}
	w.git(work, "commit", "-qam", "tune the rollout for the reaction benchmark")
	w.git(work, "push", "-q", "origin", "main")
	return w
}

// scope runs the cleanups registered on it when it is closed, rather than at the end of
// the benchmark, so that one iteration's world is gone before the next one starts.
type scope struct {
	testing.TB
	fns []func()
}

func (s *scope) Cleanup(f func()) { s.fns = append(s.fns, f) }

func (s *scope) close() {
	for i := len(s.fns) - 1; i >= 0; i-- {
		s.fns[i]()
	}
}
