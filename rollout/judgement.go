package rollout

import (
	"fmt"
	"time"
)

// Built-in gates that compare the canary with the stable subset from raw counters.
const (
	// TemplateErrorsVsStable is an anytime-valid sequential test of the canary's gRPC error
	// rate against the stable subset's (a mixture likelihood ratio on error counts).
	TemplateErrorsVsStable = "grpc-errors-vs-stable"
	// TemplateLatencyVsStable compares the canary's p99 latency with the stable subset's,
	// from the histogram buckets counted since the step began.
	TemplateLatencyVsStable = "grpc-latency-vs-stable"
)

// Defaults of the vs-stable gates, applied where the metric is silent.
const (
	// DefaultAlpha bounds the chance that a canary no worse than stable is rolled back,
	// at any number of looks.
	DefaultAlpha = 0.01
	// DefaultTolerance is how much worse than stable (as a ratio of error rates, 0.5
	// meaning 1.5 times) a canary may be and still be shown "not worse".
	DefaultTolerance = 0.5
	// DefaultMinCanaryRequests is how many canary requests a vs-stable gate needs in a
	// step before it can pass on a quiet test.
	DefaultMinCanaryRequests = 1000
)

// VsStable reports whether the metric is one of the gates that compare with stable from
// counters kept since the step began.
func (m *Metric) VsStable() bool {
	return m.Template == TemplateErrorsVsStable || m.Template == TemplateLatencyVsStable
}

// AlphaOr returns the metric's alpha, or DefaultAlpha.
func (m *Metric) AlphaOr() float64 {
	if m.Alpha != nil {
		return *m.Alpha
	}
	return DefaultAlpha
}

// ToleranceOr returns the metric's tolerance, or DefaultTolerance.
func (m *Metric) ToleranceOr() float64 {
	if m.Tolerance != nil {
		return *m.Tolerance
	}
	return DefaultTolerance
}

// MinCanaryRequests returns how many canary requests a vs-stable gate needs in a step:
// minRequests, or DefaultMinCanaryRequests.
func (m *Metric) MinCanaryRequests() int {
	if m.MinRequests > 0 {
		return m.MinRequests
	}
	return DefaultMinCanaryRequests
}

// StepKey names the step a check belongs to, so that gates which keep counts between
// checks (the vs-stable gates) start afresh on a new step or run.
type StepKey struct {
	Rollout string    `json:"rollout"`
	Run     int       `json:"run"`
	Step    int       `json:"step"`
	Since   time.Time `json:"since"` // when the step began
}

func (k StepKey) String() string { return fmt.Sprintf("%s run %d step %d", k.Rollout, k.Run, k.Step) }

// SubsetCounts are one subset's gRPC requests and failures counted by a gate since the
// step began, with the failures per gRPC code name ("UNAVAILABLE": 31).
type SubsetCounts struct {
	Subset   string           `json:"subset"`
	Requests int64            `json:"requests"`
	Errors   int64            `json:"errors"`
	Codes    map[string]int64 `json:"codes,omitempty"`
}

// ErrorRate returns Errors/Requests, or 0 without requests.
func (c SubsetCounts) ErrorRate() float64 {
	if c.Requests == 0 {
		return 0
	}
	return float64(c.Errors) / float64(c.Requests)
}

// TestEvidence is the statistical test behind a vs-stable verdict: the counts it used, the
// statistic's value, the threshold it is held against and the test's alpha.
type TestEvidence struct {
	Canary    SubsetCounts `json:"canary"`
	Stable    SubsetCounts `json:"stable"`
	Statistic string       `json:"statistic"`
	Value     float64      `json:"value"`
	Threshold float64      `json:"threshold"`
	Alpha     float64      `json:"alpha,omitempty"`
	// Looks is how many checks of the step the test has taken.
	Looks int `json:"looks"`
}

// What a step that passes its progress deadline does.
const (
	OnProgressDeadlineHold     = "hold"
	OnProgressDeadlineRollback = "rollback"
)

// PostPromotionBake returns how long the gates keep checking the canary at 100 % before
// the rollout is Succeeded: analysis.postPromotionBake, or else the bake.
func (s *Spec) PostPromotionBake() time.Duration {
	if s.Analysis == nil {
		return 0
	}
	if s.Analysis.PostPromotionBake.Set {
		return s.Analysis.PostPromotionBake.Duration
	}
	return s.Analysis.Bake.Duration
}

// Condition is a state a rollout is in beside its phase, such as Stuck.
type Condition struct {
	Type   string    `json:"type"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// ConditionStuck is the condition of a step that has not been able to decide for its
// progress deadline.
const ConditionStuck = "Stuck"

// EventStuck records that a step passed its progress deadline.
const EventStuck EventKind = "stuck"
