package analysis

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/istiometrics"
	"github.com/canarydio/canaryd/test/promtest"
)

// TestErrorsVsStableCountsEveryError feeds a real Prometheus the gateway's metrics and
// checks that the gate counts exactly what happened in the step: the first errors of a
// series that appears only with them, and the calls after a counter reset.
func TestErrorsVsStableCountsEveryError(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := istiometrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	req := func(version string, code codes.Code) istiometrics.Request {
		return istiometrics.Request{Reporter: "source", Service: "hello", Version: version, GRPCCode: code, Duration: time.Millisecond}
	}
	m.Touch(req("v1", codes.OK))
	m.Touch(req("v2", codes.OK))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	prom := promtest.StartT(t, strings.TrimPrefix(srv.URL, "http://"))
	waitQuery(t, prom.URL, `count(istio_requests_total)`, func(v float64) bool { return v == 2 })

	d := doc("hello", prom.URL)
	d.Spec.Analysis.Metrics = []rollout.Metric{{Template: rollout.TemplateErrorsVsStable, MinRequests: 100, OnNoData: rollout.OnNoDataHold}}
	gates := New(Options{})
	t.Cleanup(func() { gates.Close() })
	since := time.Now()
	step0 := rollout.StepKey{Rollout: d.Name(), Run: 1, Step: 0, Since: since}
	if vs := gates.CheckStep(t.Context(), d, step0, rollout.CanaryAt(0)); len(vs) != 0 {
		t.Fatalf("verdicts at 0%%: %+v, want none (a look only)", vs)
	}

	// The 40% step: v2's UNAVAILABLE series appears with its first errors.
	m.Add(req("v1", codes.OK), 300)
	m.Add(req("v2", codes.OK), 190)
	m.Add(req("v2", codes.Unavailable), 10)
	waitQuery(t, prom.URL, `sum(istio_requests_total)`, func(v float64) bool { return v == 500 })
	step1 := rollout.StepKey{Rollout: d.Name(), Run: 1, Step: 1, Since: since}
	v := gates.CheckStep(t.Context(), d, step1, rollout.CanaryAt(40))[0]
	if v.Test == nil {
		t.Fatalf("no test evidence: %+v", v)
	}
	want := rollout.SubsetCounts{Subset: "v2", Requests: 200, Errors: 10, Codes: map[string]int64{"UNAVAILABLE": 10}}
	if diff := cmp.Diff(want, v.Test.Canary); diff != "" {
		t.Errorf("canary counts (-want +got):\n%s", diff)
	}
	if v.Test.Stable.Requests != 300 || v.Test.Stable.Errors != 0 {
		t.Errorf("stable counts %+v, want 300 calls, no errors", v.Test.Stable)
	}
	if v.Result != rollout.Fail || !strings.HasPrefix(v.Reason, "UNAVAILABLE 10 of 200 canary calls, stable 0 of 300") {
		t.Errorf("verdict %s: %s; want fail naming the code and counts", v.Result, v.Reason)
	}
	if v.Test.Threshold != 100 || v.Test.Alpha != 0.01 || v.Test.Value < 100 {
		t.Errorf("statistic %v against %v (alpha %v), want at least 1/alpha = 100", v.Test.Value, v.Test.Threshold, v.Test.Alpha)
	}

	// The exporter restarts (counters reset to zero) and counts 50 more canary calls.
	m.Reset()
	m.Add(req("v2", codes.OK), 50)
	m.Touch(req("v1", codes.OK))
	waitQuery(t, prom.URL, `sum(istio_requests_total)`, func(v float64) bool { return v == 50 })
	v = gates.CheckStep(t.Context(), d, step1, rollout.CanaryAt(40))[0]
	if v.Test.Canary.Requests != 250 || v.Test.Canary.Errors != 10 {
		t.Errorf("after a reset: canary %+v, want 250 calls, 10 errors", v.Test.Canary)
	}
	if v.Result != rollout.Fail {
		t.Errorf("a tripped test passed later in the step: %s %s", v.Result, v.Reason)
	}
}
