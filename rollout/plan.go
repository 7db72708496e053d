package rollout

import (
	"fmt"
	"strings"
	"time"
)

// Schedule returns the document's compiled schedule. It panics on a document that did not
// validate; Parse reports such documents.
func (d *Document) Schedule() Schedule {
	s, err := NewSchedule(d.Spec.Schedule, d.Spec.TimeZone)
	if err != nil {
		panic(fmt.Sprintf("rollout %q: schedule of an invalid spec: %v", d.Name(), err))
	}
	return s
}

// WeightsAt returns the weights of step k; k < 0 means before the first step (all stable).
func (s *Spec) WeightsAt(k int) Weights {
	if k < 0 || len(s.Steps) == 0 {
		return CanaryAt(0)
	}
	return CanaryAt(s.Steps[min(k, len(s.Steps)-1)])
}

// Bake returns how long a step must hold before it may advance.
func (s *Spec) Bake() time.Duration {
	if s.Analysis == nil {
		return 0
	}
	return s.Analysis.Bake.Duration
}

// FailureLimit returns how many consecutive failed checks of one gate roll back.
func (s *Spec) FailureLimit() int {
	if s.Analysis == nil || s.Analysis.FailureLimit < 1 {
		return DefaultFailureLimit
	}
	return s.Analysis.FailureLimit
}

// Interval returns how often the gates are checked.
func (s *Spec) Interval() time.Duration {
	if s.Analysis == nil || s.Analysis.Interval.Duration <= 0 {
		return DefaultInterval
	}
	return s.Analysis.Interval.Duration
}

// Gates returns the names of the gates that must pass before a step at the given canary
// weight may advance. With no traffic on the canary (weight 0) the metric gates have nothing
// to measure, so only the probe gates such a step.
func (s *Spec) Gates(canary int) []string {
	var gates []string
	if s.Analysis != nil && canary > 0 {
		for i := range s.Analysis.Metrics {
			gates = append(gates, s.Analysis.Metrics[i].GateName())
		}
	}
	if s.Probe != nil {
		gates = append(gates, ProbeGate)
	}
	return gates
}

// Describe formats the weights with the subset names, "v1=60,v2=40", as Git trailers do.
func (s *Spec) Describe(w Weights) string {
	return fmt.Sprintf("%s=%d,%s=%d", s.Stable, w.Stable, s.Canary, w.Canary)
}

// ParseDescribed parses what Describe writes.
func (s *Spec) ParseDescribed(text string) (Weights, error) {
	var w Weights
	seen := 0
	for _, part := range strings.Split(text, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		var n int
		if _, err := fmt.Sscanf(val, "%d", &n); !ok || err != nil {
			return Weights{}, fmt.Errorf("weights %q: %q is not subset=weight", text, part)
		}
		switch name {
		case s.Stable:
			w.Stable = n
		case s.Canary:
			w.Canary = n
		default:
			return Weights{}, fmt.Errorf("weights %q: unknown subset %q", text, name)
		}
		seen++
	}
	if seen != 2 || !w.Valid() {
		return Weights{}, fmt.Errorf("weights %q do not name both subsets summing to 100", text)
	}
	return w, nil
}
