package analysis

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/istiometrics"
	"github.com/canarydio/canaryd/test/promtest"
)

// traffic is what the test exporter counts for one service: per version, the requests
// that returned each gRPC code, all with HTTP 200 as Istio reports gRPC.
type traffic struct {
	service, version string
	code             codes.Code
	n                int
	latency          time.Duration
}

var scenario = []traffic{
	{"hello", "v1", codes.OK, 100, 3 * time.Millisecond},
	{"hello", "v2", codes.OK, 100, 3 * time.Millisecond},
	{"flaky", "v1", codes.OK, 100, 3 * time.Millisecond},
	{"flaky", "v2", codes.OK, 95, 3 * time.Millisecond},
	{"flaky", "v2", codes.Unavailable, 5, 3 * time.Millisecond},
	{"broken", "v2", codes.Unavailable, 40, time.Millisecond},
	{"slow", "v1", codes.OK, 50, 20 * time.Millisecond},
	{"slow", "v2", codes.OK, 50, 800 * time.Millisecond},
	{"sparse", "v2", codes.OK, 5, time.Millisecond},
	{"idle", "v2", codes.OK, 0, 0},
}

// exporter serves the scenario's Istio metrics: every series at zero first, and the
// counts once fill is called, so that Prometheus sees an increase in one scrape.
func exporter(t testing.TB) (addr string, fill func()) {
	reg := prometheus.NewRegistry()
	m, err := istiometrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	req := func(tr traffic) istiometrics.Request {
		return istiometrics.Request{Reporter: "source", Service: tr.service, Version: tr.version, GRPCCode: tr.code, Duration: tr.latency}
	}
	for _, tr := range scenario {
		m.Touch(req(tr))
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() {
		for _, tr := range scenario {
			m.Add(req(tr), tr.n)
		}
	}
}

// waitQuery polls Prometheus until q returns a value for which ok holds.
func waitQuery(t testing.TB, promURL, q string, ok func(float64) bool) {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: promURL})
	if err != nil {
		t.Fatal(err)
	}
	papi := promv1.NewAPI(c)
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		v, _, _, err := papi.Query(t.Context(), q, time.Now())
		if vec, isVec := v.(model.Vector); err == nil && isVec && len(vec) == 1 && ok(float64(vec[0].Value)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s did not reach the wanted value in 60s (last: %v, %v)", q, v, err)
		}
		<-tick.C
	}
}

// startScenario starts Prometheus scraping the scenario's exporter and returns once
// Prometheus holds the zeros and then the counts.
func startScenario(t testing.TB) *promtest.Server {
	addr, fill := exporter(t)
	prom := promtest.StartT(t, addr)
	waitQuery(t, prom.URL, `count(istio_requests_total)`, func(v float64) bool { return v == float64(len(scenario)) })
	fill()
	total := 0
	for _, tr := range scenario {
		total += tr.n
	}
	waitQuery(t, prom.URL, `sum(istio_requests_total)`, func(v float64) bool { return v == float64(total) })
	return prom
}

func doc(service, promURL string) *rollout.Document {
	return &rollout.Document{
		APIVersion: rollout.APIVersion, Kind: rollout.Kind, Metadata: rollout.Metadata{Name: "r-" + service},
		Spec: rollout.Spec{
			VirtualService: rollout.ObjectRef{Namespace: "default", Name: "grpc-vs"},
			Host:           service, Stable: "v1", Canary: "v2",
			Analysis: &rollout.Analysis{Prometheus: rollout.Prometheus{Address: promURL}},
		},
	}
}

func minimum(v float64) *rollout.Threshold { return &rollout.Threshold{Value: v} }
func maxDur(d time.Duration) *rollout.Threshold {
	return &rollout.Threshold{Dur: d, Text: d.String()}
}

func metric(m rollout.Metric) *rollout.Metric {
	if !m.Window.Set {
		m.Window = rollout.Duration{Duration: time.Minute, Set: true}
	}
	if m.OnNoData == "" {
		m.OnNoData = rollout.OnNoDataHold
	}
	return &m
}

func TestPrometheusGate(t *testing.T) {
	prom := startScenario(t)
	gate := NewPrometheus(PrometheusOptions{HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	success := func(minReq int, onNoData string) *rollout.Metric {
		return metric(rollout.Metric{Template: rollout.TemplateSuccessRate, Min: minimum(0.99), MinRequests: minReq, OnNoData: onNoData})
	}
	latency := metric(rollout.Metric{Template: rollout.TemplateLatencyP99, Max: maxDur(500 * time.Millisecond)})
	tests := []struct {
		name      string
		service   string
		m         *rollout.Metric
		want      rollout.Result
		wantValue float64 // checked when not NaN
		reason    string  // a substring of the reason
	}{
		{"healthy canary passes", "hello", success(20, ""), rollout.Pass, 1, "within min 0.99"},
		{"5% UNAVAILABLE with HTTP 200 fails", "flaky", success(20, ""), rollout.Fail, 0.95, "0.95 is below min 0.99"},
		{"every call failed is a fail, not no data", "broken", success(0, ""), rollout.Fail, 0, "below min"},
		{"no traffic holds", "idle", success(0, ""), rollout.Inconclusive, math.NaN(), "onNoData: hold"},
		{"no traffic with onNoData fail fails", "idle", success(0, rollout.OnNoDataFail), rollout.Fail, math.NaN(), "onNoData: fail"},
		{"no series holds", "ghost", success(0, ""), rollout.Inconclusive, math.NaN(), "no series"},
		{"too few requests holds", "sparse", success(20, ""), rollout.Inconclusive, math.NaN(), "fewer than minRequests 20"},
		{"fast canary latency passes", "hello", latency, rollout.Pass, math.NaN(), "within max 500ms"},
		{"slow canary latency fails", "slow", latency, rollout.Fail, math.NaN(), "above max 500ms"},
		{"no latency data holds", "idle", latency, rollout.Inconclusive, math.NaN(), "NaN"},
		{"request rate above min passes", "hello", metric(rollout.Metric{Template: rollout.TemplateRequestRate, Min: minimum(0.01)}), rollout.Pass, math.NaN(), ""},
		{"not worse than stable within margin passes", "flaky",
			metric(rollout.Metric{Template: rollout.TemplateSuccessRate, CompareToStable: &rollout.Compare{Margin: rollout.Threshold{Value: 0.1}}}),
			rollout.Pass, 0.95, "stable 1"},
		{"worse than stable by more than margin fails", "flaky",
			metric(rollout.Metric{Template: rollout.TemplateSuccessRate, Min: minimum(0.9), CompareToStable: &rollout.Compare{Margin: rollout.Threshold{Value: 0.01}}}),
			rollout.Fail, 0.95, "worse than stable 1 by 0.05"},
		{"latency worse than stable fails", "slow",
			metric(rollout.Metric{Template: rollout.TemplateLatencyP99, Max: maxDur(time.Second), CompareToStable: &rollout.Compare{Margin: rollout.Threshold{Dur: 100 * time.Millisecond, Text: "100ms"}}}),
			rollout.Fail, math.NaN(), "worse than stable"},
		{"Flagger's HTTP-code success rate is fooled", "flaky",
			metric(rollout.Metric{Name: "http-success", Min: minimum(0.99), Query: `sum(rate(istio_requests_total{destination_service_name="{{ .Service }}",destination_version="{{ .Canary }}",response_code!~"5.*"}[{{ .Window }}])) / sum(rate(istio_requests_total{destination_service_name="{{ .Service }}",destination_version="{{ .Canary }}"}[{{ .Window }}]))`}),
			rollout.Pass, 1, ""},
		{"a query with a syntax error is an error", "hello",
			metric(rollout.Metric{Name: "typo", Max: minimum(1), Query: `sum(rate(istio_requests_total[{{ .Window }}])`}),
			rollout.Error, math.NaN(), "parse error"},
		{"several series are an error", "hello",
			metric(rollout.Metric{Name: "many", Max: minimum(1e9), Query: `istio_requests_total{destination_service_name="{{ .Service }}"}`}),
			rollout.Error, math.NaN(), "series; a gate needs one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := gate.Check(t.Context(), doc(tt.service, prom.URL), tt.m)
			if v.Result != tt.want {
				t.Fatalf("result %s, want %s: %s\n%+v", v.Result, tt.want, v.Reason, v.Evidence)
			}
			if !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", v.Reason, tt.reason)
			}
			if v.Gate != tt.m.GateName() || len(v.Evidence) == 0 {
				t.Fatalf("verdict %+v lacks gate or evidence", v)
			}
			ev := v.Evidence[len(v.Evidence)-1]
			if tt.m.CompareToStable != nil {
				ev = v.Evidence[len(v.Evidence)-2]
			}
			if !strings.Contains(ev.Query, tt.service) && tt.m.Query == "" || ev.Threshold == "" {
				t.Errorf("evidence lacks the rendered query or threshold: %+v", ev)
			}
			if !math.IsNaN(tt.wantValue) && math.Abs(ev.Value-tt.wantValue) > 1e-9 {
				t.Errorf("value %v, want %v", ev.Value, tt.wantValue)
			}
		})
	}
	t.Run("the success rate counts gRPC requests with their samples", func(t *testing.T) {
		v := gate.Check(t.Context(), doc("flaky", prom.URL), success(20, ""))
		ev := v.Evidence[len(v.Evidence)-1]
		for _, want := range []string{`grpc_response_status="0"`, `destination_version="v2"`, `request_protocol="grpc"`, `[1m]`} {
			if !strings.Contains(ev.Query, want) {
				t.Errorf("query lacks %s: %s", want, ev.Query)
			}
		}
		if ev.Samples < 90 || ev.Samples > 200 {
			t.Errorf("samples %d, want about 100", ev.Samples)
		}
	})
	t.Run("prometheus stopped is an error", func(t *testing.T) {
		if err := prom.Stop(); err != nil {
			t.Fatal(err)
		}
		v := gate.Check(t.Context(), doc("hello", prom.URL), success(20, ""))
		if v.Result != rollout.Error || !strings.Contains(v.Reason, "connection refused") {
			t.Errorf("got %s %q, want an error saying the connection was refused", v.Result, v.Reason)
		}
	})
}

func TestPrometheusGateUnreachable(t *testing.T) {
	tests := []struct {
		name, addr, reason string
	}{
		{"no address", "", "no Prometheus address"},
		{"nothing listening", "http://127.0.0.1:1", "connection refused"},
		{"credentials are hidden", "http://admin:hunter2@127.0.0.1:1", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := NewPrometheus(PrometheusOptions{})
			m := metric(rollout.Metric{Template: rollout.TemplateSuccessRate, Min: minimum(0.99)})
			v := gate.Check(t.Context(), doc("hello", tt.addr), m)
			if v.Result != rollout.Error || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("got %s %q, want an error with %q", v.Result, v.Reason, tt.reason)
			}
			if strings.Contains(v.Reason, "hunter2") {
				t.Errorf("reason leaks the password: %s", v.Reason)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer hang.Close()
		defer close(release)
		gate := NewPrometheus(PrometheusOptions{QueryTimeout: 100 * time.Millisecond})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		v := gate.Check(ctx, doc("hello", hang.URL), metric(rollout.Metric{Template: rollout.TemplateSuccessRate, Min: minimum(0.99)}))
		if v.Result != rollout.Error || !strings.Contains(v.Reason, "deadline exceeded") {
			t.Errorf("got %s %q, want a timeout error", v.Result, v.Reason)
		}
	})
}
