package server

import (
	"runtime"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canarydio/canaryd/rollout"
)

// Outcomes are the values of canaryd_rollout_outcomes_total's outcome label: how runs end.
var Outcomes = []string{"succeeded", "rolled_back", "aborted"}

// outcomeOf is the outcome an event records, or "".
func outcomeOf(k rollout.EventKind) string {
	switch k {
	case rollout.EventSucceeded:
		return "succeeded"
	case rollout.EventRolledBack:
		return "rolled_back"
	case rollout.EventAborted:
		return "aborted"
	}
	return ""
}

// rolloutMetrics are the families added for on-call work: per-rollout errors and outcomes,
// each gate's measured value, push failures, the build and whether this replica leads.
type rolloutMetrics struct {
	errors       *prometheus.CounterVec
	outcomes     *prometheus.CounterVec
	gateValue    *prometheus.GaugeVec
	pushFailures prometheus.Counter
	buildInfo    *prometheus.GaugeVec
	leader       prometheus.Gauge

	mu    sync.Mutex
	known map[string]bool // rollouts that have series
}

func newRolloutMetrics() *rolloutMetrics {
	return &rolloutMetrics{known: map[string]bool{},
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canaryd_rollout_errors_total",
			Help: "Errors while reconciling one rollout: a failed save, push or apply of Git's change.",
		}, []string{"rollout"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canaryd_rollout_outcomes_total",
			Help: "Runs that ended, by rollout and outcome (succeeded, rolled_back, aborted).",
		}, []string{"rollout", "outcome"}),
		gateValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canaryd_analysis_value",
			Help: "The value a gate measured at its last conclusive check: the canary's metric, or the probe's success ratio.",
		}, []string{"rollout", "gate"}),
		pushFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canaryd_git_push_failures_total",
			Help: "Weight changes that could not be pushed to the Git remote (after replays).",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canaryd_build_info",
			Help: "Always 1; the labels say which canaryd build runs.",
		}, []string{"version", "goversion"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "canaryd_leader",
			Help: "1 while this replica leads (runs the rollouts), 0 while it follows.",
		}),
	}
}

func (r *rolloutMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.errors, r.outcomes, r.gateValue, r.pushFailures, r.buildInfo, r.leader}
}

// SetBuild sets canaryd_build_info for the running version.
func (m *Metrics) SetBuild(version string) {
	if m == nil {
		return
	}
	m.r.buildInfo.Reset()
	m.r.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
}

// SetLeader says whether this replica leads.
func (m *Metrics) SetLeader(leading bool) {
	if m == nil {
		return
	}
	v := 0.0
	if leading {
		v = 1
	}
	m.r.leader.Set(v)
}

// RolloutError counts one error while reconciling the named rollout.
func (m *Metrics) RolloutError(name string) {
	if m == nil {
		return
	}
	m.r.errors.WithLabelValues(name).Inc()
}

// PushFailed counts one weight change that could not be pushed.
func (m *Metrics) PushFailed() {
	if m == nil {
		return
	}
	m.r.pushFailures.Inc()
}

// ObserveEvents counts the outcomes that saved events record (a run that succeeded,
// rolled back or was aborted).
func (m *Metrics) ObserveEvents(evs []rollout.Event) {
	if m == nil {
		return
	}
	for _, ev := range evs {
		if o := outcomeOf(ev.Kind); o != "" {
			m.r.outcomes.WithLabelValues(ev.Rollout, o).Inc()
		}
	}
}

// initRollout creates a rollout's counters at 0, so that increase() sees its first error
// or outcome.
func (m *Metrics) initRollout(name string) {
	m.r.mu.Lock()
	m.r.known[name] = true
	m.r.mu.Unlock()
	m.r.errors.WithLabelValues(name)
	for _, o := range Outcomes {
		m.r.outcomes.WithLabelValues(name, o)
	}
}

// KeepRollouts deletes the series of every rollout not in names: the rollouts whose specs
// were removed from Git.
func (m *Metrics) KeepRollouts(names []string) {
	if m == nil {
		return
	}
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	m.r.mu.Lock()
	var gone []string
	for n := range m.r.known {
		if !keep[n] {
			gone = append(gone, n)
			delete(m.r.known, n)
		}
	}
	m.r.mu.Unlock()
	for _, n := range gone {
		m.DeleteRollout(n)
	}
}

// observeGateValues sets canaryd_analysis_value for each conclusive verdict.
func (m *Metrics) observeGateValues(name string, vs []rollout.Verdict) {
	for _, v := range vs {
		if x, ok := GateValue(v); ok {
			m.r.gateValue.WithLabelValues(name, v.Gate).Set(x)
		}
	}
}

// GateValue is what a verdict measured: for the probe the ratio of calls that answered OK,
// for a metric the canary's value. ok is false for a verdict that measured nothing (an
// error, no data).
func GateValue(v rollout.Verdict) (float64, bool) {
	if v.Result != rollout.Pass && v.Result != rollout.Fail {
		return 0, false
	}
	if v.Gate == rollout.ProbeGate {
		if len(v.Evidence) == 0 {
			return 0, false
		}
		ok := 0
		for _, ev := range v.Evidence {
			if ev.Code == "OK" && ev.Reason == "" {
				ok++
			}
		}
		return float64(ok) / float64(len(v.Evidence)), true
	}
	for _, ev := range v.Evidence {
		if strings.HasSuffix(ev.Threshold, " requests") {
			continue // the request count behind minRequests, not the metric
		}
		return ev.Value, true
	}
	return 0, false
}
