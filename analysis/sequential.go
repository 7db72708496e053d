package analysis

import "math"

// ErrorRatios are the alternatives of the errors-vs-stable test: how many times the
// stable subset's error rate the canary's may be. The mixture weighs them equally.
var ErrorRatios = []float64{1.5, 2, 3, 5, 10}

// mirrorRatios are the alternatives of the "not worse" test: a canary as good as stable,
// or better.
var mirrorRatios = []float64{1, 0.5, 0.25}

// Sequential is an anytime-valid test of whether the canary fails more often than the
// stable subset, from error counts taken at each check.
//
// Conditional on a check's requests and on how many of its errors there were, if the
// canary and stable fail at the same rate each error is the canary's with probability s,
// the canary's share of the check's requests. If the canary's error rate is phi times
// stable's, that probability is phi*s / (phi*s + 1 - s). The likelihood ratio of phi
// against 1, multiplied over checks, is a nonnegative martingale with mean 1 under the
// null hypothesis, and so is the mixture (the mean over ErrorRatios); by Ville's
// inequality it ever reaches 1/alpha with probability at most alpha, however often one
// looks. Sequential also runs the mirror test: the null "the canary's error rate is at
// least 1+tolerance times stable's" against ratios below it; when that mixture reaches
// 1/alpha the canary is shown not worse than stable by more than the tolerance.
//
// The zero value is not ready; use NewSequential. It is not safe for concurrent use.
type Sequential struct {
	worse []float64 // log likelihood ratio of each ErrorRatios alternative
	// better holds the log likelihood ratios of the mirror test's alternatives
	// against 1+tolerance.
	better    []float64
	tolerance float64
	looks     int
}

// NewSequential returns a test whose "not worse" half allows the canary an error rate up
// to 1+tolerance times stable's.
func NewSequential(tolerance float64) *Sequential {
	return &Sequential{worse: make([]float64, len(ErrorRatios)), better: make([]float64, len(mirrorRatios)), tolerance: tolerance}
}

// Observe adds one check's increments: canary and stable requests and errors since the
// previous check. A check where either subset had no requests carries no information
// about the ratio and leaves the test as it was.
func (t *Sequential) Observe(canaryReq, canaryErr, stableReq, stableErr int64) {
	t.looks++
	if canaryReq <= 0 || stableReq <= 0 || canaryErr+stableErr == 0 {
		return
	}
	s := float64(canaryReq) / float64(canaryReq+stableReq)
	ec, es := float64(canaryErr), float64(stableErr)
	for i, phi := range ErrorRatios {
		t.worse[i] += binomialLogLR(ec, es, share(phi, s), s)
	}
	null := share(1+t.tolerance, s)
	for i, phi := range mirrorRatios {
		t.better[i] += binomialLogLR(ec, es, share(phi, s), null)
	}
}

// share is the probability that an error is the canary's when the canary has share s of
// the requests and fails phi times as often as stable.
func share(phi, s float64) float64 { return phi * s / (phi*s + 1 - s) }

// binomialLogLR is the log likelihood ratio of ec canary and es stable errors under
// canary-probability p1 against p0.
func binomialLogLR(ec, es, p1, p0 float64) float64 {
	return ec*(math.Log(p1)-math.Log(p0)) + es*(math.Log1p(-p1)-math.Log1p(-p0))
}

// Worse returns the mixture likelihood ratio that the canary fails more often than
// stable; it rolls back at 1/alpha.
func (t *Sequential) Worse() float64 { return mixture(t.worse) }

// NotWorse returns the mixture likelihood ratio that the canary fails less often than
// 1+tolerance times stable; at 1/alpha the canary is shown not worse.
func (t *Sequential) NotWorse() float64 { return mixture(t.better) }

// Looks returns how many checks the test has observed.
func (t *Sequential) Looks() int { return t.looks }

// mixture returns the mean of exp(l) over logs, computed without overflow.
func mixture(logs []float64) float64 {
	hi := math.Inf(-1)
	for _, l := range logs {
		hi = max(hi, l)
	}
	var sum float64
	for _, l := range logs {
		sum += math.Exp(l - hi)
	}
	return math.Exp(hi) * sum / float64(len(logs))
}
