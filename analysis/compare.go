package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/canarydio/canaryd/rollout"
)

// compare measures the stable subset with the same query and window and fails the check
// when the canary is worse by more than the margin. A stable subset without data cannot
// be compared: the comparison is skipped and said so when the metric has bounds of its
// own (which passed), and the check is inconclusive when it has none.
func (c *check) compare(ctx context.Context, vars rollout.QueryVars, canary float64) {
	q, err := Render(c.m, asStable(vars))
	if err != nil {
		c.errorf("%v", err)
		return
	}
	margin := c.m.CompareToStable.Margin.For(c.m)
	up := higherIsBetter(c.m)
	stable, err := c.query(ctx, q)
	ev := rollout.Evidence{Query: q, Value: stable, Threshold: compareText(up, margin)}
	switch {
	case errors.Is(err, errNoData):
		ev.Value, ev.Reason = 0, "stable: "+err.Error()
		c.v.Evidence = append(c.v.Evidence, ev)
		if c.m.Min == nil && c.m.Max == nil {
			c.noData("stable: " + err.Error() + "; nothing to compare the canary with")
			return
		}
		c.v.Reason += "; stable has no data, comparison skipped"
		return
	case err != nil:
		ev.Reason = err.Error()
		c.v.Evidence = append(c.v.Evidence, ev)
		c.errorf("query the stable subset of %s: %v", c.m.GateName(), err)
		return
	}
	worse := stable - canary // how much worse the canary is
	if !up {
		worse = canary - stable
	}
	if worse > margin {
		ev.Reason = fmt.Sprintf("canary %s is worse than stable %s by %s, more than the margin %s",
			formatValue(canary), formatValue(stable), formatValue(worse), formatValue(margin))
		c.v.Evidence = append(c.v.Evidence, ev)
		c.v.Result, c.v.Reason = rollout.Fail, ev.Reason
		return
	}
	c.v.Evidence = append(c.v.Evidence, ev)
	c.v.Reason += fmt.Sprintf("; stable %s, canary not worse by more than %s", formatValue(stable), formatValue(margin))
}

// query runs an instant query that must return one number: a scalar or a vector of at most
// one sample. No series, NaN and ±Inf are errNoData; several series are an error, since a
// gate cannot tell which one counts.
func (c *check) query(ctx context.Context, q string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.p.timeout)
	defer cancel()
	// No evaluation time: Prometheus evaluates at its own "now", so neither clock skew nor
	// an injected clock can move the window.
	val, warnings, _, err := c.api.Query(ctx, q, time.Time{})
	if err != nil {
		return 0, errors.New(c.redact.Replace(err.Error()))
	}
	if len(warnings) > 0 {
		c.p.log.Warn("prometheus query warnings", "gate", c.m.GateName(), "warnings", warnings)
	}
	var f float64
	switch v := val.(type) {
	case nil:
		// A success envelope without "data", or with "data": null: a broken proxy, not
		// an empty answer; it must never read as a value.
		return 0, errors.New("prometheus answered success without a result (a proxy in front of it?)")
	case *model.Scalar:
		if v == nil {
			return 0, errors.New("prometheus answered success with a null scalar")
		}
		f = float64(v.Value)
	case model.Vector:
		switch len(v) {
		case 0:
			return 0, fmt.Errorf("%w: the query returned no series", errNoData)
		case 1:
			if v[0] == nil {
				return 0, errors.New("prometheus answered success with a null sample")
			}
			f = float64(v[0].Value)
		default:
			return 0, fmt.Errorf("the query returned %d series; a gate needs one (aggregate with sum, avg or max)", len(v))
		}
	default:
		return 0, fmt.Errorf("the query returned a %s; a gate needs a scalar or an instant vector", val.Type())
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: the value is %v (no requests in the window?)", errNoData, f)
	}
	return f, nil
}

// outOfBounds says why value breaks the metric's min or max, or returns "".
func outOfBounds(m *rollout.Metric, value float64) string {
	if m.Min != nil && value < m.Min.For(m) {
		return fmt.Sprintf("%s is below min %s", formatValue(value), m.Min)
	}
	if m.Max != nil && value > m.Max.For(m) {
		return fmt.Sprintf("%s is above max %s", formatValue(value), m.Max)
	}
	return ""
}

// thresholdText writes the bounds as the spec does: "min 0.99", "max 500ms", "0.1..0.9".
func thresholdText(m *rollout.Metric) string {
	switch {
	case m.Min != nil && m.Max != nil:
		return fmt.Sprintf("min %s, max %s", m.Min, m.Max)
	case m.Min != nil:
		return "min " + m.Min.String()
	case m.Max != nil:
		return "max " + m.Max.String()
	}
	return "compareToStable only"
}

func compareText(up bool, margin float64) string {
	if up {
		return fmt.Sprintf("canary >= stable - %s", formatValue(margin))
	}
	return fmt.Sprintf("canary <= stable + %s", formatValue(margin))
}

func formatValue(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }
