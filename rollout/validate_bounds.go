package rollout

import (
	"strconv"
)

// ratioBounds checks the bounds of a metric whose value is a ratio (grpc-success-rate):
// they lie within 0..1. A bound such as 95, written as Flagger users write a percentage,
// is refused with the ratio it most likely means.
func (v validator) ratioBounds(base string, m *Metric) {
	if m.Template != TemplateSuccessRate {
		return
	}
	for _, b := range []struct {
		field string
		t     *Threshold
	}{{"min", m.Min}, {"max", m.Max}} {
		switch t := b.t; {
		case t == nil:
		case t.Dur != 0:
			v.bad(base+"."+b.field, "%s is a ratio of successful calls within 0..1, not a duration (%s)", m.Template, t)
		case t.Value > 1 && t.Value <= 100:
			v.bad(base+"."+b.field, "%s is outside 0..1: %s is a ratio, not a percentage; did you mean %s?",
				t, m.Template, strconv.FormatFloat(t.Value/100, 'g', 10, 64))
		case t.Value < 0 || t.Value > 1:
			v.bad(base+"."+b.field, "%s is outside 0..1: %s is a ratio of successful calls", t, m.Template)
		}
	}
}
