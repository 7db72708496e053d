package analysis

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"

	"github.com/canarydio/canaryd/rollout"
)

// canarySelector selects the gRPC requests to the canary, as reported by the calling proxy
// (the gateway or a client's sidecar): it also counts the calls it could not deliver to a
// down canary, which the canary's own proxy never sees. For a VirtualService (.By is
// rollout.SelectBySubset) the canary is the subset named by .Canary of the spec's service,
// the pods' version label as in the sample's DestinationRule; for a Gateway API route (.By
// is rollout.SelectByService) it is the Service named by .Canary.
const canarySelector = `reporter="source",` +
	`{{ if eq .By "` + rollout.SelectByService + `" }}destination_service_name="{{ .Canary }}",destination_service_namespace="{{ .Namespace }}"` +
	`{{ else }}destination_service_name="{{ .Service }}",destination_version="{{ .Canary }}"{{ end }},request_protocol="grpc"`

// builtins are the PromQL templates of the built-in metrics. The success rate counts the
// gRPC status (grpc_response_status), not the HTTP code, which is 200 for most failed gRPC
// calls; "or vector(0)" keeps a canary whose every call failed at 0 rather than no data.
var builtins = map[string]string{
	rollout.TemplateSuccessRate: `(sum(rate(istio_requests_total{` + canarySelector + `,grpc_response_status="0"}[{{ .Window }}])) or vector(0))` +
		` / sum(rate(istio_requests_total{` + canarySelector + `}[{{ .Window }}]))`,
	rollout.TemplateLatencyP99: `histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{` +
		canarySelector + `}[{{ .Window }}])))`,
	rollout.TemplateRequestRate: `sum(rate(istio_requests_total{` + canarySelector + `}[{{ .Window }}]))`,
}

// requestCountQuery counts the canary's gRPC requests in the window, for minRequests.
const requestCountQuery = `sum(increase(istio_requests_total{` + canarySelector + `}[{{ .Window }}]))`

// Vars returns the variables a metric's query is rendered with: the spec's namespace (the
// host's when it is a FQDN, else the VirtualService's), host, service (the host's first
// label), stable and canary subsets, the metric's window in PromQL's notation and the
// rollout's name. For a Gateway API route the namespace is the route's, the service is
// the canary's, the stable and canary are Service names and By is rollout.SelectByService.
func Vars(doc *rollout.Document, m *rollout.Metric) rollout.QueryVars {
	s := &doc.Spec
	if t := s.Target(); t.Gateway() {
		return rollout.QueryVars{
			Namespace: t.Namespace, Service: t.Canary, Stable: t.Stable, Canary: t.Canary,
			Window: model.Duration(windowOf(m)).String(), Rollout: doc.Name(), By: rollout.SelectByService,
		}
	}
	parts := strings.Split(s.Host, ".")
	ns := s.VirtualService.Namespace
	if len(parts) > 1 && parts[1] != "" {
		ns = parts[1]
	}
	return rollout.QueryVars{
		Namespace: ns, Host: s.Host, Service: parts[0], Stable: s.Stable, Canary: s.Canary,
		Window: model.Duration(windowOf(m)).String(), Rollout: doc.Name(),
	}
}

// Render returns the metric's PromQL for vars: its custom query, or its built-in template.
func Render(m *rollout.Metric, vars rollout.QueryVars) (string, error) {
	text := m.Query
	if text == "" {
		var ok bool
		if text, ok = builtins[m.Template]; !ok {
			return "", fmt.Errorf("unknown metric template %q", m.Template)
		}
	}
	return render(text, vars)
}

func render(text string, vars rollout.QueryVars) (string, error) { return renderAny(text, vars) }

func renderAny(text string, vars any) (string, error) {
	t, err := template.New("query").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("query template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, vars); err != nil {
		return "", fmt.Errorf("query template: %w", err)
	}
	return b.String(), nil
}

// asStable returns vars for the stable subset: the same query, with .Canary naming the
// stable subset, measures it in the same window.
func asStable(vars rollout.QueryVars) rollout.QueryVars {
	vars.Canary = vars.Stable
	return vars
}

// higherIsBetter reports which way a metric's values improve: up when it has only a min
// bound (or is the success rate), down otherwise (latency, error counts).
func higherIsBetter(m *rollout.Metric) bool {
	switch {
	case m.Min != nil && m.Max == nil:
		return true
	case m.Max != nil && m.Min == nil:
		return false
	}
	return m.Template == rollout.TemplateSuccessRate || m.Template == rollout.TemplateRequestRate
}

// windowOf returns the metric's window, or the default.
func windowOf(m *rollout.Metric) time.Duration {
	if m.Window.Duration > 0 {
		return m.Window.Duration
	}
	return rollout.DefaultWindow
}
