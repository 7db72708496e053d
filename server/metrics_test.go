package server

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/canarydio/canaryd/rollout"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice on one registry did not fail")
	}
	m.SetRollout(Rollout{Name: "hello", Phase: rollout.Progressing, Stable: "v1", Canary: "v2", Weights: rollout.CanaryAt(40)})
	m.SetRollout(Rollout{Name: "hello", Phase: rollout.RolledBack, Stable: "v1", Canary: "v3", Weights: rollout.CanaryAt(0)})
	m.SetRollout(Rollout{Name: "gone", Phase: rollout.Idle, Stable: "a", Canary: "b", Weights: rollout.CanaryAt(0)})
	m.DeleteRollout("gone")
	m.ObserveVerdicts("hello", []rollout.Verdict{{Gate: "probe", Result: rollout.Pass}, {Gate: "prometheus", Result: rollout.Fail}})
	m.ObserveCheck("hello", "probe", rollout.Pass)
	m.ObserveStep(1500 * time.Millisecond)
	m.ObservePush(200*time.Millisecond, 2)
	m.ObservePush(100*time.Millisecond, 0)
	m.ReconcileError()

	want := `
# HELP canaryd_rollout_weight Traffic weight in percent that canaryd holds for each subset of a rollout's route.
# TYPE canaryd_rollout_weight gauge
canaryd_rollout_weight{rollout="hello",subset="v1"} 100
canaryd_rollout_weight{rollout="hello",subset="v3"} 0
# HELP canaryd_analysis_checks_total Gate checks by rollout, gate and result (pass, fail, inconclusive, error).
# TYPE canaryd_analysis_checks_total counter
canaryd_analysis_checks_total{gate="probe",result="pass",rollout="hello"} 2
canaryd_analysis_checks_total{gate="prometheus",result="fail",rollout="hello"} 1
# HELP canaryd_git_push_retries_total Pushes rejected by the remote and replayed on its new head.
# TYPE canaryd_git_push_retries_total counter
canaryd_git_push_retries_total 2
# HELP canaryd_reconcile_errors_total Errors while reconciling the store, Git and the cluster.
# TYPE canaryd_reconcile_errors_total counter
canaryd_reconcile_errors_total 1
`
	names := []string{"canaryd_rollout_weight", "canaryd_analysis_checks_total", "canaryd_git_push_retries_total", "canaryd_reconcile_errors_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.phase); n != len(rollout.Phases) {
		t.Errorf("%d phase series, want %d (one per phase of hello; gone deleted)", n, len(rollout.Phases))
	}
	if v := testutil.ToFloat64(m.phase.WithLabelValues("hello", "RolledBack")); v != 1 {
		t.Errorf("phase RolledBack = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.phase.WithLabelValues("hello", "Progressing")); v != 0 {
		t.Errorf("phase Progressing = %v, want 0", v)
	}
	if v := testutil.ToFloat64(m.stuck.WithLabelValues("hello")); v != 0 {
		t.Errorf("stuck = %v for a rollout that is not, want 0", v)
	}
	m.SetRollout(Rollout{Name: "quiet", Phase: rollout.Progressing, Stuck: &rollout.Condition{Type: rollout.ConditionStuck, Reason: "no traffic"}})
	if v := testutil.ToFloat64(m.stuck.WithLabelValues("quiet")); v != 1 {
		t.Errorf("stuck = %v for a stuck rollout, want 1", v)
	}
	m.DeleteRollout("quiet")

	// /metrics serves the registry.
	srv := httptest.NewServer(New(Options{Source: sampleSource(), Registry: reg}).Handler())
	t.Cleanup(srv.Close)
	status, body := call(t, "GET", srv.URL+"/metrics", "", "")
	for _, w := range []string{"canaryd_step_duration_seconds_count 1", "canaryd_git_push_seconds_count 2", `canaryd_rollout_phase{phase="RolledBack",rollout="hello"} 1`} {
		if status != 200 || !strings.Contains(string(body), w) {
			t.Errorf("/metrics (%d) lacks %q", status, w)
		}
	}
	var nilMetrics *Metrics
	nilMetrics.ObserveStep(time.Second) // a nil *Metrics does nothing
	nilMetrics.SetRollout(Rollout{Name: "x"})
}

func TestNoMetricsRoute(t *testing.T) {
	srv := httptest.NewServer(New(Options{Source: sampleSource()}).Handler())
	t.Cleanup(srv.Close)
	if status, _ := call(t, "GET", srv.URL+"/metrics", "", ""); status != 404 {
		t.Errorf("/metrics without a registry: %d, want 404", status)
	}
}
