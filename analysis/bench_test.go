package analysis

import (
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/greeter"
)

// cliChecks is how many 5-call checks the grpcurl CLI makes to measure its cost.
const cliChecks = 6

// BenchmarkProbeCheck measures one probe check of 5 calls in process and, in the same run
// against the same greeter, the same check made by running the grpcurl binary 5 times. It
// reports both costs and the speed-up (target: at least 20×).
func BenchmarkProbeCheck(b *testing.B) {
	bin := grpcurlCLI(b)
	_, addr := serveGreeter(b, greeter.Options{Instance: "bench", Reflection: true}, "127.0.0.1:0")
	line := `-d '{"name":"Jack"}' -plaintext ` + addr + ` helloworld.Greeter/SayHello`
	spec := probeSpec(b, line, "Hello, Jack!", 5, 1, 2*time.Second)
	words, err := splitForExec(line)
	if err != nil {
		b.Fatal(err)
	}
	var cli time.Duration
	for range cliChecks {
		start := time.Now()
		for range 5 {
			out, err := exec.Command(bin, words...).Output()
			if err != nil || !strings.Contains(string(out), "Hello, Jack!") {
				b.Fatalf("grpcurl: %v: %s", err, out)
			}
		}
		cli += time.Since(start)
	}
	cliPerCheck := cli / cliChecks

	p := newProbe(b)
	if v := p.Check(b.Context(), spec); v.Result != rollout.Pass { // warm: dial and reflection
		b.Fatalf("warm-up check: %s: %s", v.Result, v.Reason)
	}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if v := p.Check(b.Context(), spec); v.Result != rollout.Pass {
			b.Fatalf("check: %s: %s", v.Result, v.Reason)
		}
		lat = append(lat, time.Since(start))
	}
	inProc := mean(lat)
	b.ReportMetric(ms(cliPerCheck), "cli-ms/check")
	b.ReportMetric(ms(inProc), "inproc-ms/check")
	b.ReportMetric(ms(quantile(lat, 0.99)), "inproc-p99-ms")
	b.ReportMetric(float64(cliPerCheck)/float64(inProc), "speedup-x")
}

// BenchmarkPrometheusGate measures one success-rate gate check against a real Prometheus
// (two instant queries: the request count and the rate).
func BenchmarkPrometheusGate(b *testing.B) {
	prom := startScenario(b)
	gate := NewPrometheus(PrometheusOptions{HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	d := doc("flaky", prom.URL)
	m := metric(rollout.Metric{Template: rollout.TemplateSuccessRate, Min: minimum(0.99), MinRequests: 20})
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if v := gate.Check(b.Context(), d, m); v.Result != rollout.Fail {
			b.Fatalf("check: %s: %s", v.Result, v.Reason)
		}
		lat = append(lat, time.Since(start))
	}
	b.ReportMetric(ms(quantile(lat, 0.5)), "p50-ms")
	b.ReportMetric(ms(quantile(lat, 0.99)), "p99-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
