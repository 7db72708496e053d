package analysis

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/istiometrics"
	"github.com/canarydio/canaryd/test/promtest"
)

// grpcRouteDoc is a rollout of a GRPCRoute whose stable and canary are two Services.
func grpcRouteDoc(t testing.TB, promURL string) *rollout.Document {
	t.Helper()
	docs, err := rollout.Parse("r.yaml", []byte(`apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata: {name: greeter}
spec:
  route: {kind: GRPCRoute, namespace: shop, name: grpc-route}
  stable: greeter-v1
  canary: greeter-v2
  manifest: deploy/route.yaml
  steps: [0, 40, 100]
  schedule: "@every 30s"
  analysis:
    prometheus: {address: `+promURL+`}
    metrics:
      - template: grpc-success-rate
        min: 0.99
      - template: grpc-latency-p99
        max: 500ms
`))
	if err != nil {
		t.Fatal(err)
	}
	return docs[0]
}

// TestRenderByService: for a Gateway API route the built-in templates select the canary by
// its Service, never by a version label, and the stable's query by the stable Service.
func TestRenderByService(t *testing.T) {
	doc := grpcRouteDoc(t, "http://prometheus:9090")
	for i := range doc.Spec.Analysis.Metrics {
		m := &doc.Spec.Analysis.Metrics[i]
		vars := Vars(doc, m)
		if vars.By != rollout.SelectByService || vars.Namespace != "shop" {
			t.Fatalf("vars = %+v, want By %s in namespace shop", vars, rollout.SelectByService)
		}
		for _, c := range []struct {
			vars       rollout.QueryVars
			want, not_ string
		}{{vars, `destination_service_name="greeter-v2",destination_service_namespace="shop"`, "greeter-v1"},
			{asStable(vars), `destination_service_name="greeter-v1",destination_service_namespace="shop"`, "greeter-v2"}} {
			q, err := Render(m, c.vars)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(q, c.want) || strings.Contains(q, c.not_) || strings.Contains(q, "destination_version") {
				t.Errorf("%s: %s\nwant it to select %s only, by no version", m.GateName(), q, c.want)
			}
		}
	}
}

// TestGatewayEvidence runs the built-in gates on a real Prometheus scraping Istio's metrics
// of two Services, the canary failing 10% of its calls: the verdict fails on the canary
// Service's numbers and its evidence carries the query as rendered.
func TestGatewayEvidence(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := istiometrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		req istiometrics.Request
		n   int
	}{
		{istiometrics.Request{Reporter: "source", Service: "greeter-v1", Namespace: "shop", Version: "v1", GRPCCode: codes.OK, Duration: 3 * time.Millisecond}, 100},
		{istiometrics.Request{Reporter: "source", Service: "greeter-v2", Namespace: "shop", Version: "v1", GRPCCode: codes.OK, Duration: 3 * time.Millisecond}, 90},
		{istiometrics.Request{Reporter: "source", Service: "greeter-v2", Namespace: "shop", Version: "v1", GRPCCode: codes.Unavailable, Duration: time.Millisecond}, 10},
	}
	for _, c := range calls {
		m.Touch(c.req)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	prom := promtest.StartT(t, strings.TrimPrefix(srv.URL, "http://"))
	waitQuery(t, prom.URL, `count(istio_requests_total)`, func(v float64) bool { return v == 3 })
	doc := grpcRouteDoc(t, prom.URL)
	vsDoc := grpcRouteDoc(t, prom.URL)
	vsDoc.Spec.Analysis.Metrics = []rollout.Metric{{Template: rollout.TemplateErrorsVsStable, MinRequests: 50, OnNoData: rollout.OnNoDataHold}}
	gates := New(Options{})
	t.Cleanup(func() { gates.Close() })
	key := rollout.StepKey{Rollout: vsDoc.Name(), Run: 1, Step: 0}
	gates.CheckStep(t.Context(), vsDoc, key, rollout.CanaryAt(0)) // the baseline look
	for _, c := range calls {
		m.Add(c.req, c.n)
	}
	waitQuery(t, prom.URL, `sum(istio_requests_total)`, func(v float64) bool { return v == 200 })
	key.Step = 1
	if vs := gates.CheckStep(t.Context(), vsDoc, key, rollout.CanaryAt(40)); len(vs) != 1 || vs[0].Test == nil ||
		vs[0].Test.Canary.Requests != 100 || vs[0].Test.Canary.Errors != 10 || vs[0].Test.Stable.Requests != 100 {
		t.Errorf("grpc-errors-vs-stable on two Services: %+v, want the canary Service's 10 of 100 failed and stable's 100", vs)
	}

	gate := NewPrometheus(PrometheusOptions{HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	v := gate.Check(t.Context(), doc, &doc.Spec.Analysis.Metrics[0])
	if v.Result != rollout.Fail || len(v.Evidence) == 0 {
		t.Fatalf("verdict %s (%s), want fail with evidence: %+v", v.Result, v.Reason, v.Evidence)
	}
	ev := v.Evidence[len(v.Evidence)-1]
	if !strings.Contains(ev.Query, `destination_service_name="greeter-v2"`) || ev.Value < 0.85 || ev.Value > 0.95 {
		t.Errorf("evidence %+v: want the rendered query of Service greeter-v2 and a value near 0.9", ev)
	}
}
