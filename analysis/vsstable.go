package analysis

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/canarydio/canaryd/rollout"
)

// DefaultLatencyMargin is how much higher than stable's the canary's p99 may be when a
// grpc-latency-vs-stable gate sets no max.
const DefaultLatencyMargin = 100 * time.Millisecond

// minStableLatency is how many stable calls a latency comparison needs in the step.
const minStableLatency = 50

// subsetsSelector selects the raw series of both subsets as the calling proxy (the
// gateway, or a client's sidecar) reports them: it also sees the calls it could not
// deliver to a down canary, which the canary's own proxy never counts.
//
// For a Gateway API route (By is rollout.SelectByService) the subsets are two Services.
const subsetsSelector = `reporter="source",` +
	`{{ if eq .By "` + rollout.SelectByService + `" }}destination_service_name=~"{{ .Subsets }}",destination_service_namespace="{{ .Namespace }}"` +
	`{{ else }}destination_service_name="{{ .Service }}",destination_version=~"{{ .Subsets }}"{{ end }},request_protocol="grpc"`

// The raw series the vs-stable gates read: counters, never rates, so that they can take
// the increases themselves.
const (
	requestsSeries = `istio_requests_total{` + subsetsSelector + `}`
	bucketsSeries  = `istio_request_duration_milliseconds_bucket{` + subsetsSelector + `}`
)

// vsStableVars are the variables of the raw-series queries.
type vsStableVars struct {
	Service, Namespace, By string
	Subsets                string // a regular expression matching the stable and the canary subset
}

func seriesQuery(text string, vars rollout.QueryVars) (string, error) {
	v := vsStableVars{Service: vars.Service, Namespace: vars.Namespace, By: vars.By,
		Subsets: regexp.QuoteMeta(vars.Stable) + "|" + regexp.QuoteMeta(vars.Canary)}
	return renderAny(text, v)
}

// subsetOf returns which subset a series counts: its destination_version, or for a Gateway
// API route its destination_service_name.
func (sc *stepCheck) subsetOf(s sample) string {
	if sc.vars.By == rollout.SelectByService {
		return string(s.labels["destination_service_name"])
	}
	return string(s.labels["destination_version"])
}

// stepCheck is one evaluation of a vs-stable gate.
type stepCheck struct {
	*check
	key  rollout.StepKey
	w    rollout.Weights
	vars rollout.QueryVars
	bake time.Duration
}

// checkStep evaluates a vs-stable metric for the step key at weights w. At canary weight 0
// it only takes a look (so the next step counts from here) and returns ok false.
func (p *Prometheus) checkStep(ctx context.Context, doc *rollout.Document, m *rollout.Metric, key rollout.StepKey, w rollout.Weights) (rollout.Verdict, bool) {
	c := &check{p: p, m: m, v: rollout.Verdict{Gate: m.GateName(), Time: p.now()}}
	if v, ok := p.connect(c, doc); !ok {
		return v, w.Canary > 0
	}
	sc := &stepCheck{check: c, key: key, w: w, vars: Vars(doc, m), bake: doc.Spec.Bake()}
	stale := 2*doc.Spec.Interval() + time.Minute
	series := requestsSeries
	if m.Template == rollout.TemplateLatencyVsStable {
		series = bucketsSeries
	}
	q, err := seriesQuery(series, sc.vars)
	if err != nil {
		return c.errorf("%v", err), w.Canary > 0
	}
	samples, err := c.queryVector(ctx, q)
	if err != nil {
		return c.errorf("query %s: %v", m.GateName(), err), w.Canary > 0
	}
	c.v.Evidence = append(c.v.Evidence, rollout.Evidence{Query: q, Samples: len(samples)})
	p.tracker.with(key, m.GateName(), c.v.Time, stale, func(e *tracked) {
		inc := e.counters.look(samples, c.v.Time)
		if m.Template == rollout.TemplateLatencyVsStable {
			sc.latency(e.tally, samples, inc)
		} else {
			sc.errors(e.tally, samples, inc)
		}
	})
	return c.v, w.Canary > 0
}

// connect resolves the Prometheus of doc into c; ok is false with an Error verdict.
func (p *Prometheus) connect(c *check, doc *rollout.Document) (rollout.Verdict, bool) {
	addr := p.def
	if doc.Spec.Analysis != nil && doc.Spec.Analysis.Prometheus.Address != "" {
		addr = doc.Spec.Analysis.Prometheus.Address
	}
	if addr == "" {
		return c.errorf("no Prometheus address: set spec.analysis.prometheus.address or the daemon's prometheus.address"), false
	}
	promAPI, err := p.api(addr)
	if err != nil {
		return c.errorf("%v", err), false
	}
	c.api, c.redact = promAPI, p.redactFor(addr)
	return rollout.Verdict{}, true
}

// queryVector runs an instant query and returns its series.
func (c *check) queryVector(ctx context.Context, q string) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.p.timeout)
	defer cancel()
	val, warnings, _, err := c.api.Query(ctx, q, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("%s", c.redact.Replace(err.Error()))
	}
	if len(warnings) > 0 {
		c.p.log.Warn("prometheus query warnings", "gate", c.m.GateName(), "warnings", warnings)
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("the query returned a %s; expected an instant vector", val.Type())
	}
	out := make([]sample, 0, len(vec))
	for _, s := range vec {
		if f := float64(s.Value); !math.IsNaN(f) && !math.IsInf(f, 0) {
			out = append(out, sample{labels: s.Metric, value: f})
		}
	}
	return out, nil
}

// errors adds a look's increases to the step's counts and test, and judges them.
func (sc *stepCheck) errors(t *tally, samples []sample, inc []float64) {
	if t.test == nil {
		t.test = NewSequential(sc.m.ToleranceOr())
		t.canary.Subset, t.stable.Subset = sc.vars.Canary, sc.vars.Stable
	}
	var look [2]rollout.SubsetCounts // canary, stable
	for i, s := range samples {
		n := int64(math.Round(inc[i]))
		switch sc.subsetOf(s) {
		case sc.vars.Canary:
			add(&look[0], s.labels, n)
			add(&t.canary, s.labels, n)
		case sc.vars.Stable:
			add(&look[1], s.labels, n)
			add(&t.stable, s.labels, n)
		}
	}
	if sc.w.Canary == 0 {
		return // a look for the baseline only
	}
	t.test.Observe(look[0].Requests, look[0].Errors, look[1].Requests, look[1].Errors)
	if look[1].Requests == 0 && t.baseline != nil {
		t.alone = observeAlone(t.alone, look[0].Requests, look[0].Errors, aloneNull(*t.baseline, sc.m.ToleranceOr()))
	}
	sc.judgeErrors(t)
}

// aloneNull is the error rate a canary serving alone is held to: 1+tolerance times the
// stable subset's in an earlier step of the run, estimated with one error added so that
// a stable without errors does not make every canary error a regression.
func aloneNull(stable rollout.SubsetCounts, tolerance float64) float64 {
	return min((float64(stable.Errors)+1)/float64(stable.Requests+1)*(1+tolerance), 0.5)
}

// observeAlone adds a look of n canary calls with e errors to the one-sample test of
// "the canary's error rate is at most p0" against ErrorRatios times p0: a nonnegative
// supermartingale under the null, so Ville's inequality bounds it as it does the
// two-sample test.
func observeAlone(logs []float64, n, e int64, p0 float64) []float64 {
	if logs == nil {
		logs = make([]float64, len(ErrorRatios))
	}
	if n <= 0 {
		return logs
	}
	for i, phi := range ErrorRatios {
		p1 := min(phi*p0, 0.99)
		logs[i] += float64(e)*(math.Log(p1)-math.Log(p0)) + float64(n-e)*(math.Log1p(-p1)-math.Log1p(-p0))
	}
	return logs
}

// judgeErrors sets the verdict from the step's test: Fail once the mixture likelihood
// ratio has reached 1/alpha (and for the rest of the step), Pass when the mirror test shows
// the canary not worse or when the bake has passed with enough canary requests, and
// Inconclusive otherwise.
func (sc *stepCheck) judgeErrors(t *tally) {
	alpha := sc.m.AlphaOr()
	worse := t.test.Worse()
	ev := &rollout.TestEvidence{Canary: t.canary, Stable: t.stable, Statistic: "mixture likelihood ratio (canary worse)",
		Value: worse, Threshold: 1 / alpha, Alpha: alpha, Looks: t.test.Looks()}
	sc.v.Test = ev
	counts := countsText(t)
	if worse >= 1/alpha {
		t.tripped = true
	}
	if t.tripped {
		sc.v.Result = rollout.Fail
		sc.v.Reason = fmt.Sprintf("%s (likelihood ratio %s >= %s, alpha %s)", counts, formatValue(worse), formatValue(1/alpha), formatValue(alpha))
		return
	}
	if t.stable.Requests == 0 && t.alone != nil {
		sc.judgeAlone(t, ev, counts)
		return
	}
	if sc.m.Max != nil && t.stable.Requests == 0 && t.canary.Requests >= minStableLatency {
		if rate := t.canary.ErrorRate(); rate > sc.m.Max.Value {
			ev.Statistic, ev.Value, ev.Threshold = "canary error ratio", rate, sc.m.Max.Value
			sc.v.Result = rollout.Fail
			sc.v.Reason = fmt.Sprintf("%s; the canary alone fails %s of calls, above max %s", counts, formatValue(rate), sc.m.Max)
			return
		}
	}
	if nw := t.test.NotWorse(); nw >= 1/alpha {
		ev.Statistic, ev.Value = fmt.Sprintf("mixture likelihood ratio (canary not worse than %s times stable)", formatValue(1+sc.m.ToleranceOr())), nw
		sc.v.Result = rollout.Pass
		sc.v.Reason = fmt.Sprintf("%s; shown not worse than %s times stable's error rate (alpha %s)", counts, formatValue(1+sc.m.ToleranceOr()), formatValue(alpha))
		return
	}
	sc.passAfterBake(t.canary.Requests, fmt.Sprintf("%s; likelihood ratio %s < %s", counts, formatValue(worse), formatValue(1/alpha)))
}

// judgeAlone judges a canary that serves alone against stable's error rate in an earlier
// step of the run: Fail once the one-sample test reaches 1/alpha (for the rest of the
// step), else Pass after the bake with enough canary calls.
func (sc *stepCheck) judgeAlone(t *tally, ev *rollout.TestEvidence, counts string) {
	alpha := sc.m.AlphaOr()
	p0 := aloneNull(*t.baseline, sc.m.ToleranceOr())
	lr := mixture(t.alone)
	ev.Statistic = fmt.Sprintf("mixture likelihood ratio (canary alone worse than error ratio %s)", formatValue(p0))
	ev.Value, ev.Stable = lr, *t.baseline
	why := fmt.Sprintf("%s; the canary serves alone, held to %s of calls failing (stable earlier in the run: %d of %d)",
		counts, formatValue(p0), t.baseline.Errors, t.baseline.Requests)
	if lr >= 1/alpha {
		t.tripped = true
		sc.v.Result = rollout.Fail
		sc.v.Reason = fmt.Sprintf("%s (likelihood ratio %s >= %s, alpha %s)", why, formatValue(lr), formatValue(1/alpha), formatValue(alpha))
		return
	}
	sc.passAfterBake(t.canary.Requests, fmt.Sprintf("%s; likelihood ratio %s < %s", why, formatValue(lr), formatValue(1/alpha)))
}

// passAfterBake passes when the step has baked with enough canary requests, and is
// inconclusive (a hold, never a pass) before.
func (sc *stepCheck) passAfterBake(canaryRequests int64, why string) {
	need := int64(sc.m.MinCanaryRequests())
	baked := sc.key.Since.IsZero() || !sc.v.Time.Before(sc.key.Since.Add(sc.bake))
	switch {
	case canaryRequests >= need && baked:
		sc.v.Result, sc.v.Reason = rollout.Pass, why
	case canaryRequests < need:
		sc.v.Result = rollout.Inconclusive
		sc.v.Reason = fmt.Sprintf("%s; %d canary requests in the step, fewer than %d", why, canaryRequests, need)
	default:
		sc.v.Result = rollout.Inconclusive
		sc.v.Reason = fmt.Sprintf("%s; baking until %s", why, sc.key.Since.Add(sc.bake).Format(time.RFC3339))
	}
}

// countsText says the step's counts, led by the canary's dominant failing code:
// "UNAVAILABLE 31 of 420 canary calls, stable 2 of 610".
func countsText(t *tally) string {
	code, n := dominant(t.canary)
	if code == "" {
		code, _ = dominant(t.stable)
	}
	if code == "" {
		return fmt.Sprintf("no failed calls: canary 0 of %d, stable 0 of %d", t.canary.Requests, t.stable.Requests)
	}
	return fmt.Sprintf("%s %d of %d canary calls, stable %d of %d (all failures: canary %d, stable %d)",
		code, n, t.canary.Requests, t.stable.Codes[code], t.stable.Requests, t.canary.Errors, t.stable.Errors)
}

// latency adds a look's bucket increases to the step's histograms and compares the p99s.
func (sc *stepCheck) latency(t *tally, samples []sample, inc []float64) {
	t.canary.Subset, t.stable.Subset = sc.vars.Canary, sc.vars.Stable
	for i, s := range samples {
		v := sc.subsetOf(s)
		le, err := strconv.ParseFloat(string(s.labels["le"]), 64)
		if err != nil || (v != sc.vars.Canary && v != sc.vars.Stable) {
			continue
		}
		if t.buckets[v] == nil {
			t.buckets[v] = map[float64]float64{}
		}
		t.buckets[v][le] += inc[i]
	}
	if sc.w.Canary == 0 {
		return
	}
	cp, cn := histQuantile(0.99, t.buckets[sc.vars.Canary])
	sp, sn := histQuantile(0.99, t.buckets[sc.vars.Stable])
	cp, sp = finite(cp), finite(sp) // no calls yet: 0, which the counts explain; JSON has no NaN
	t.canary.Requests, t.stable.Requests = int64(cn), int64(sn)
	margin := float64(DefaultLatencyMargin) / float64(time.Millisecond)
	if sc.m.Max != nil {
		margin = sc.m.Max.For(sc.m)
	}
	ev := &rollout.TestEvidence{Canary: t.canary, Stable: t.stable, Statistic: "p99 canary - p99 stable (ms)",
		Value: cp - sp, Threshold: margin}
	sc.v.Test = ev
	counts := fmt.Sprintf("p99 canary %sms over %d calls, stable %sms over %d", formatValue(cp), int(cn), formatValue(sp), int(sn))
	switch {
	case cn < float64(sc.m.MinCanaryRequests()):
		sc.passAfterBake(int64(cn), counts)
	case sn < minStableLatency:
		ev.Value = 0
		sc.passAfterBake(int64(cn), counts+"; stable has too few calls to compare")
	case cp-sp > margin:
		sc.v.Result = rollout.Fail
		sc.v.Reason = fmt.Sprintf("%s: the canary is slower by %sms, more than %s", counts, formatValue(cp-sp), formatMargin(sc.m))
	default:
		sc.passAfterBake(int64(cn), counts)
	}
}

func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

func formatMargin(m *rollout.Metric) string {
	if m.Max != nil {
		return m.Max.String()
	}
	return DefaultLatencyMargin.String()
}

// histQuantile estimates the q-quantile of a cumulative histogram (upper bound -> count) as
// Prometheus' histogram_quantile does, by linear interpolation within the bucket, and
// returns it with the histogram's count. An empty histogram gives NaN, 0.
func histQuantile(q float64, buckets map[float64]float64) (float64, float64) {
	les := make([]float64, 0, len(buckets))
	for le := range buckets {
		les = append(les, le)
	}
	sort.Float64s(les)
	if len(les) == 0 || buckets[les[len(les)-1]] <= 0 {
		return math.NaN(), 0
	}
	count := buckets[les[len(les)-1]]
	rank := q * count
	lower, below := 0.0, 0.0
	for _, le := range les {
		cum := buckets[le]
		if cum >= rank {
			if math.IsInf(le, 1) {
				return lower, count
			}
			if cum == below {
				return le, count
			}
			return lower + (le-lower)*(rank-below)/(cum-below), count
		}
		lower, below = le, cum
	}
	return lower, count
}
