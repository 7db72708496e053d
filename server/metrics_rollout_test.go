package server

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/canarydio/canaryd/rollout"
)

// TestRolloutMetrics: outcomes, errors and gate values per rollout, build info and the
// leader gauge; a rollout dropped by KeepRollouts loses every series.
func TestRolloutMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.SetBuild("v1.2.3")
	m.SetLeader(true)
	m.SetRollout(Rollout{Name: "hello", Phase: rollout.Progressing, Stable: "v1", Canary: "v2", Weights: rollout.CanaryAt(40)})
	m.SetRollout(Rollout{Name: "broken", Phase: rollout.Invalid})
	m.ObserveEvents([]rollout.Event{{Rollout: "hello", Kind: rollout.EventStep}, {Rollout: "hello", Kind: rollout.EventRolledBack}})
	m.RolloutError("hello")
	m.PushFailed()
	m.ObserveVerdicts("hello", []rollout.Verdict{
		{Gate: "grpc-success-rate", Result: rollout.Fail, Evidence: []rollout.Evidence{{Value: 0.7, Threshold: ">= 0.99"}}},
		{Gate: rollout.ProbeGate, Result: rollout.Pass, Evidence: []rollout.Evidence{{Code: "OK"}, {Code: "OK"}, {Code: "UNAVAILABLE", Reason: "down"}, {Code: "OK"}}},
		{Gate: "grpc-latency-p99", Result: rollout.Inconclusive, Evidence: []rollout.Evidence{{Value: 3, Threshold: ">= 20 requests"}}},
	})
	want := `
# HELP canaryd_analysis_value The value a gate measured at its last conclusive check: the canary's metric, or the probe's success ratio.
# TYPE canaryd_analysis_value gauge
canaryd_analysis_value{gate="grpc-success-rate",rollout="hello"} 0.7
canaryd_analysis_value{gate="probe",rollout="hello"} 0.75
# HELP canaryd_rollout_outcomes_total Runs that ended, by rollout and outcome (succeeded, rolled_back, aborted).
# TYPE canaryd_rollout_outcomes_total counter
canaryd_rollout_outcomes_total{outcome="aborted",rollout="broken"} 0
canaryd_rollout_outcomes_total{outcome="aborted",rollout="hello"} 0
canaryd_rollout_outcomes_total{outcome="rolled_back",rollout="broken"} 0
canaryd_rollout_outcomes_total{outcome="rolled_back",rollout="hello"} 1
canaryd_rollout_outcomes_total{outcome="succeeded",rollout="broken"} 0
canaryd_rollout_outcomes_total{outcome="succeeded",rollout="hello"} 0
# HELP canaryd_rollout_errors_total Errors while reconciling one rollout: a failed save, push or apply of Git's change.
# TYPE canaryd_rollout_errors_total counter
canaryd_rollout_errors_total{rollout="broken"} 0
canaryd_rollout_errors_total{rollout="hello"} 1
# HELP canaryd_git_push_failures_total Weight changes that could not be pushed to the Git remote (after replays).
# TYPE canaryd_git_push_failures_total counter
canaryd_git_push_failures_total 1
# HELP canaryd_leader 1 while this replica leads (runs the rollouts), 0 while it follows.
# TYPE canaryd_leader gauge
canaryd_leader 1
`
	names := []string{"canaryd_analysis_value", "canaryd_rollout_outcomes_total", "canaryd_rollout_errors_total",
		"canaryd_git_push_failures_total", "canaryd_leader"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if v := testutil.ToFloat64(m.phase.WithLabelValues("broken", "Invalid")); v != 1 {
		t.Errorf("phase Invalid of broken = %v, want 1", v)
	}
	if n := testutil.CollectAndCount(m.r.buildInfo); n != 1 {
		t.Errorf("%d build info series, want 1", n)
	}

	m.KeepRollouts([]string{"hello"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "rollout" && l.GetValue() == "broken" {
					t.Errorf("%s still has a series of the removed rollout broken", mf.GetName())
				}
			}
		}
	}
	if v := testutil.ToFloat64(m.phase.WithLabelValues("hello", "Progressing")); v != 1 {
		t.Errorf("hello lost its phase series: %v", v)
	}
}
