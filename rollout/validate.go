package rollout

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validate adds every semantic problem of doc to d. Fields that did not decode are reported
// already and are checked no further.
func validate(d *decoder, doc *Document) {
	v := validator{d: d}
	if doc.APIVersion != APIVersion {
		v.bad("apiVersion", "must be %q, not %q", APIVersion, doc.APIVersion)
	}
	if doc.Kind != Kind {
		v.bad("kind", "must be %q, not %q", Kind, doc.Kind)
	}
	switch name := doc.Metadata.Name; {
	case name == "":
		v.bad("metadata.name", "is required")
	case len(name) > 63 || !dnsLabel.MatchString(name):
		v.bad("metadata.name", "%q is not a DNS label (lowercase letters, digits and '-', at most 63)", name)
	}
	s := &doc.Spec
	v.target(s)
	v.required("spec.stable", s.Stable)
	v.required("spec.canary", s.Canary)
	v.required("spec.manifest", s.Manifest)
	if s.Stable != "" && s.Stable == s.Canary {
		v.bad("spec.canary", "must differ from stable (both are %q)", s.Stable)
	}
	v.steps(s.Steps)
	if _, err := NewSchedule(s.Schedule, ""); err != nil {
		v.bad("spec.schedule", "%v", err)
	}
	if _, err := NewSchedule("@every 1m", s.TimeZone); err != nil {
		v.bad("spec.timeZone", "%v", err)
	}
	if s.Analysis != nil {
		v.analysis(s.Analysis)
	}
	if s.Probe != nil {
		v.probe(s.Probe)
	}
	v.deadline(s)
}

type validator struct{ d *decoder }

// target checks that the spec names one object to step: a VirtualService, or a Gateway API
// route (spec.route written as a mapping), not neither and not both.
func (v validator) target(s *Spec) {
	vs := s.VirtualService != ObjectRef{}
	if !s.Route.IsObject() {
		if !vs {
			v.bad("spec.virtualService", "is required: {namespace, name} of a VirtualService, "+
				"or else route: {kind: GRPCRoute or HTTPRoute, namespace, name} of a Gateway API route")
			return
		}
		v.required("spec.virtualService.namespace", s.VirtualService.Namespace)
		v.required("spec.virtualService.name", s.VirtualService.Name)
		v.required("spec.host", s.Host)
		return
	}
	if vs {
		v.bad("spec.route", "names a %s while spec.virtualService names %s: set one of them, not both",
			orKind(s.Route.Kind), s.VirtualService)
	}
	r := s.Route
	if r.Kind == "" {
		v.bad("spec.route.kind", "is required: %s", strings.Join(RouteKinds, " or "))
	} else if !slices.Contains(RouteKinds, r.Kind) {
		v.bad("spec.route.kind", "must be %s, not %q", strings.Join(RouteKinds, " or "), r.Kind)
	}
	v.required("spec.route.namespace", r.Namespace)
	v.required("spec.route.name", r.Name)
	if r.Port < 0 || r.Port > 65535 {
		v.bad("spec.route.port", "must be within 1..65535, not %d", r.Port)
	}
	if s.Host != "" {
		v.bad("spec.host", "is for a VirtualService's destinations; a %s's stable and canary are Service names", orKind(r.Kind))
	}
	for _, f := range []struct{ field, name string }{{"spec.stable", s.Stable}, {"spec.canary", s.Canary}} {
		if f.name != "" && (len(f.name) > 63 || !dnsLabel.MatchString(f.name)) {
			v.bad(f.field, "%q is not a Service name (a DNS label)", f.name)
		}
	}
}

// orKind names a route kind for messages, "route" when it is not set.
func orKind(kind string) string {
	if kind == "" {
		return "route"
	}
	return kind
}

// bad reports a problem with field, unless the field (or a part of it) did not even decode:
// that problem is reported already, and a second one would only repeat it.
func (v validator) bad(field, format string, args ...any) {
	if v.d.index.related(field) {
		return
	}
	v.d.errorf(v.d.where(field), field, format, args...)
}

func (v validator) required(field, value string) {
	if value == "" {
		v.bad(field, "is required")
	}
}

// steps reports each out-of-range weight once, and checks that the others rise to 100.
func (v validator) steps(steps []int) {
	if len(steps) == 0 {
		v.bad("spec.steps", "is required: the canary weights in order, such as [0, 40, 100]")
		return
	}
	prev := -1
	for i, w := range steps {
		field := fmt.Sprintf("spec.steps[%d]", i)
		switch {
		case w < 0 || w > 100:
			v.bad(field, "%d is outside 0..100", w)
			continue
		case w == prev:
			v.bad(field, "%d is duplicated", w)
		case w < prev:
			v.bad(field, "%d is lower than the step before it (%d): steps must rise", w, prev)
		}
		prev = max(prev, w)
	}
	if last := steps[len(steps)-1]; last != 100 && last >= 0 && last <= 100 {
		v.bad(fmt.Sprintf("spec.steps[%d]", len(steps)-1), "the last step must be 100, not %d", last)
	}
}

// deadline checks the progress deadline against the bake it must outlast.
func (v validator) deadline(s *Spec) {
	switch s.OnProgressDeadline {
	case "", OnProgressDeadlineHold, OnProgressDeadlineRollback:
	default:
		v.bad("spec.onProgressDeadline", "must be %q or %q, not %q", OnProgressDeadlineHold, OnProgressDeadlineRollback, s.OnProgressDeadline)
	}
	if d := s.ProgressDeadline.Duration; d < 0 {
		v.bad("spec.progressDeadline", "must not be negative, not %s", d)
	} else if d > 0 && (d <= s.Bake() || d <= s.PostPromotionBake()) {
		v.bad("spec.progressDeadline", "%s must be longer than the bake (%s) and the post-promotion bake (%s)", d, s.Bake(), s.PostPromotionBake())
	}
}

func (v validator) analysis(a *Analysis) {
	if a.FailureLimit < 0 {
		v.bad("spec.analysis.failureLimit", "must be at least 1, not %d", a.FailureLimit)
	}
	if addr := a.Prometheus.Address; addr != "" {
		if u, err := url.Parse(addr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.bad("spec.analysis.prometheus.address", "%q is not an http(s) URL", addr)
		}
	}
	names := map[string]int{}
	for i := range a.Metrics {
		m := &a.Metrics[i]
		base := fmt.Sprintf("spec.analysis.metrics[%d]", i)
		v.metric(base, m)
		if name := m.GateName(); name != "" {
			if j, dup := names[name]; dup {
				v.bad(base, "gate %q is already defined by metrics[%d]; give one a distinct name", name, j)
			}
			names[name] = i
		}
	}
}

func (v validator) metric(base string, m *Metric) {
	switch {
	case m.Template == "" && m.Query == "":
		v.bad(base, "needs a template (%v) or a query", Templates)
	case m.Template != "" && m.Query != "":
		v.bad(base+".query", "set either template or query, not both")
	case m.Template != "" && !slices.Contains(Templates, m.Template):
		v.bad(base+".template", "unknown template %q (known: %v)", m.Template, Templates)
	case m.Query != "" && m.Name == "":
		v.bad(base, "a custom query needs a name")
	case len(m.Query) > MaxQueryBytes:
		v.bad(base+".query", "is %d bytes; a query may be at most %d", len(m.Query), MaxQueryBytes)
	case m.Query != "":
		if err := checkQueryTemplate(m.Query); err != nil {
			v.bad(base+".query", "%v", err)
		}
	}
	if m.VsStable() {
		v.vsStable(base, m)
	} else if m.Min == nil && m.Max == nil && m.CompareToStable == nil {
		v.bad(base, "needs min, max or compareToStable")
	}
	if m.Min != nil && m.Max != nil && m.Min.For(m) > m.Max.For(m) {
		v.bad(base+".min", "min %s is greater than max %s", m.Min, m.Max)
	}
	v.ratioBounds(base, m)
	if m.MinRequests < 0 {
		v.bad(base+".minRequests", "must not be negative")
	}
	if m.OnNoData != OnNoDataHold && m.OnNoData != OnNoDataFail {
		v.bad(base+".onNoData", "must be %q or %q, not %q", OnNoDataHold, OnNoDataFail, m.OnNoData)
	}
}

// vsStable checks the settings of a gate that compares with stable from counters.
func (v validator) vsStable(base string, m *Metric) {
	if m.Alpha != nil && (*m.Alpha <= 0 || *m.Alpha > 0.5) {
		v.bad(base+".alpha", "must be within (0, 0.5], not %v", *m.Alpha)
	}
	if m.Tolerance != nil && *m.Tolerance < 0 {
		v.bad(base+".tolerance", "must not be negative, not %v", *m.Tolerance)
	}
	if m.Min != nil {
		v.bad(base+".min", "%s takes no min; use max", m.Template)
	}
	if m.CompareToStable != nil {
		v.bad(base+".compareToStable", "%s always compares with stable", m.Template)
	}
	if m.Template == TemplateErrorsVsStable && m.Max != nil && (m.Max.Dur != 0 || m.Max.Value < 0 || m.Max.Value > 1) {
		v.bad(base+".max", "is the canary's highest error ratio when it serves alone, within 0..1, not %s", m.Max)
	}
	if m.Template == TemplateLatencyVsStable && m.Max != nil && m.Max.For(m) < 0 {
		v.bad(base+".max", "must not be negative, not %s", m.Max)
	}
}

func (v validator) probe(p *Probe) {
	if p.GRPCurl == "" {
		v.bad("spec.probe.grpcurl", "is required: a grpcurl command line such as -plaintext HOST:PORT pkg.Service/Method")
	} else if cmd, err := ParseGRPCurl(p.GRPCurl); err != nil {
		v.bad("spec.probe.grpcurl", "%v", err)
	} else {
		p.Command = cmd
	}
	if _, err := CompileExpect(p.Expect); err != nil {
		v.bad("spec.probe.expect", "%v", err)
	}
	if p.Count < 0 {
		v.bad("spec.probe.count", "must be at least 1, not %d", p.Count)
	}
	if p.Count > MaxProbeCount {
		v.bad("spec.probe.count", "must be at most %d calls per check, not %d", MaxProbeCount, p.Count)
	}
	for field, addr := range map[string]string{"canaryAddress": p.CanaryAddress, "stableAddress": p.StableAddress} {
		if _, port, err := net.SplitHostPort(addr); addr != "" && (err != nil || port == "") {
			v.bad("spec.probe."+field, "%q is not HOST:PORT", addr)
		}
	}
	if p.StableAddress != "" && p.CanaryAddress == "" {
		v.bad("spec.probe.stableAddress", "is a control for canaryAddress; set canaryAddress too")
	}
	if ms := *p.MinSuccess; ms < 0 || ms > 1 {
		v.bad("spec.probe.minSuccess", "must be within 0..1, not %v", ms)
	}
}
