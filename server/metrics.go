package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canarydio/canaryd/rollout"
)

// Metrics holds canaryd's metric families. The wiring calls its methods as rollouts move;
// /metrics serves whatever registry they were registered on. Its methods are safe for
// concurrent use; a nil *Metrics does nothing, so callers need no guard.
type Metrics struct {
	weight      *prometheus.GaugeVec
	phase       *prometheus.GaugeVec
	stuck       *prometheus.GaugeVec
	checks      *prometheus.CounterVec
	step        prometheus.Histogram
	push        prometheus.Histogram
	pushRetries prometheus.Counter
	reconcile   prometheus.Counter
	r           *rolloutMetrics

	mu      sync.Mutex
	subsets map[string][2]string // each rollout's subsets, as its weight series name them
}

// NewMetrics creates the metric families and registers them on reg. It fails when one is
// already registered there.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canaryd_rollout_weight",
			Help: "Traffic weight in percent that canaryd holds for each subset of a rollout's route.",
		}, []string{"rollout", "subset"}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canaryd_rollout_phase",
			Help: "1 for the phase a rollout is in, 0 for every other phase.",
		}, []string{"rollout", "phase"}),
		stuck: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "canaryd_rollout_stuck",
			Help: "1 while a rollout's step is past its progress deadline without deciding, else 0.",
		}, []string{"rollout"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "canaryd_analysis_checks_total",
			Help: "Gate checks by rollout, gate and result (pass, fail, inconclusive, error).",
		}, []string{"rollout", "gate", "result"}),
		step: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "canaryd_step_duration_seconds",
			Help:    "Time to carry out one weight change: intent, Git and the cluster, result.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		push: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "canaryd_git_push_seconds",
			Help:    "Time to push one weight change to the Git remote, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		pushRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canaryd_git_push_retries_total",
			Help: "Pushes rejected by the remote and replayed on its new head.",
		}),
		reconcile: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "canaryd_reconcile_errors_total",
			Help: "Errors while reconciling the store, Git and the cluster.",
		}),
		r:       newRolloutMetrics(),
		subsets: map[string][2]string{},
	}
	cs := []prometheus.Collector{m.weight, m.phase, m.stuck, m.checks, m.step, m.push, m.pushRetries, m.reconcile}
	for _, c := range append(cs, m.r.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// SetRollout sets the weight and phase gauges of r, replacing what was set for it before
// (subsets that were renamed disappear).
func (m *Metrics) SetRollout(r Rollout) {
	if m == nil {
		return
	}
	// Deleting by a partial match visits every series: only a rollout whose subsets were
	// renamed pays for it, not every update of a thousand rollouts.
	m.mu.Lock()
	sub, seen := m.subsets[r.Name]
	m.subsets[r.Name] = [2]string{r.Stable, r.Canary}
	m.mu.Unlock()
	if seen && sub != [2]string{r.Stable, r.Canary} {
		m.weight.DeletePartialMatch(prometheus.Labels{"rollout": r.Name})
	}
	m.initRollout(r.Name)
	if r.Stable != "" {
		m.weight.WithLabelValues(r.Name, r.Stable).Set(float64(r.Weights.Stable))
	}
	if r.Canary != "" {
		m.weight.WithLabelValues(r.Name, r.Canary).Set(float64(r.Weights.Canary))
	}
	for _, p := range rollout.Phases {
		v := 0.0
		if p == r.Phase {
			v = 1
		}
		m.phase.WithLabelValues(r.Name, string(p)).Set(v)
	}
	stuck := 0.0
	if r.Stuck != nil {
		stuck = 1
	}
	m.stuck.WithLabelValues(r.Name).Set(stuck)
}

// DeleteRollout removes every series of a rollout that no longer exists.
func (m *Metrics) DeleteRollout(name string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"rollout": name}
	m.mu.Lock()
	delete(m.subsets, name)
	m.mu.Unlock()
	m.r.mu.Lock()
	delete(m.r.known, name)
	m.r.mu.Unlock()
	m.weight.DeletePartialMatch(l)
	m.phase.DeletePartialMatch(l)
	m.stuck.DeletePartialMatch(l)
	m.checks.DeletePartialMatch(l)
	m.r.errors.DeletePartialMatch(l)
	m.r.outcomes.DeletePartialMatch(l)
	m.r.gateValue.DeletePartialMatch(l)
}

// ObserveCheck counts one gate check of a rollout with its result.
func (m *Metrics) ObserveCheck(rolloutName, gate string, result rollout.Result) {
	if m == nil {
		return
	}
	m.checks.WithLabelValues(rolloutName, gate, string(result)).Inc()
}

// ObserveVerdicts counts every verdict of one check round and sets each gate's measured
// value.
func (m *Metrics) ObserveVerdicts(rolloutName string, vs []rollout.Verdict) {
	if m == nil {
		return
	}
	for _, v := range vs {
		m.ObserveCheck(rolloutName, v.Gate, v.Result)
	}
	m.observeGateValues(rolloutName, vs)
}

// ObserveStep records how long one weight change took.
func (m *Metrics) ObserveStep(d time.Duration) {
	if m == nil {
		return
	}
	m.step.Observe(d.Seconds())
}

// ObservePush records one push to the Git remote: how long it took and how many times it
// was rejected and replayed before it landed.
func (m *Metrics) ObservePush(d time.Duration, retries int) {
	if m == nil {
		return
	}
	m.push.Observe(d.Seconds())
	if retries > 0 {
		m.pushRetries.Add(float64(retries))
	}
}

// PushReplayed counts one push the remote rejected that is replayed on the new head
// (canaryd_git_push_retries_total). Safe for concurrent use.
func (m *Metrics) PushReplayed() {
	if m == nil {
		return
	}
	m.pushRetries.Inc()
}

// ReconcileError counts one error while reconciling the store, Git and the cluster.
func (m *Metrics) ReconcileError() {
	if m == nil {
		return
	}
	m.reconcile.Inc()
}
