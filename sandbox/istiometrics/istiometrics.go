// Package istiometrics exports Istio's standard request metrics (istio_requests_total and
// istio_request_duration_milliseconds) with the labels Istio's proxies put on them, so that
// the sandbox's gateway and the tests can feed Prometheus what a mesh would: gRPC calls
// whose HTTP code is 200 and whose real status is in grpc_response_status.
package istiometrics

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// The metric names, as Istio's telemetry v2 writes them.
const (
	RequestsTotal   = "istio_requests_total"
	RequestDuration = "istio_request_duration_milliseconds"
)

// Labels are the labels both metrics carry, a subset of Istio's standard labels.
var Labels = []string{
	"reporter", "source_workload", "source_workload_namespace",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"destination_workload", "destination_workload_namespace", "destination_version", "destination_app",
	"request_protocol", "response_code", "grpc_response_status", "response_flags",
}

// Buckets are Istio's default duration buckets, in milliseconds.
var Buckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Request describes requests to count. Empty fields take the defaults their comments give.
type Request struct {
	Reporter       string // "destination"
	SourceWorkload string // "istio-ingressgateway"
	SourceNS       string // "istio-system"
	Service        string // destination_service_name, such as "grpc-helloworld-py"
	Namespace      string // destination namespace; "default"
	Version        string // destination_version, such as "v2"
	Workload       string // Service-Version
	Protocol       string // "grpc"
	HTTPCode       int    // 200
	GRPCCode       codes.Code
	Duration       time.Duration
	ResponseFlags  string // "-"
}

// Metrics holds the two metrics. It is safe for concurrent use.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New creates the metrics and registers them with reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RequestsTotal, Help: "Requests, as Istio's proxies count them.",
		}, Labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: RequestDuration, Help: "Request durations in milliseconds, as Istio's proxies measure them.",
			Buckets: Buckets,
		}, Labels),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register istio metrics: %w", err)
		}
	}
	return m, nil
}

// Observe counts one request.
func (m *Metrics) Observe(r Request) { m.Add(r, 1) }

// Add counts n requests alike, each taking r.Duration.
func (m *Metrics) Add(r Request, n int) {
	lv := r.labelValues()
	m.requests.WithLabelValues(lv...).Add(float64(n))
	h := m.duration.WithLabelValues(lv...)
	ms := float64(r.Duration) / float64(time.Millisecond)
	for range n {
		h.Observe(ms)
	}
}

// Touch creates r's series at zero without counting a request, so that a later Add is an
// increase Prometheus can see.
func (m *Metrics) Touch(r Request) { m.Add(r, 0) }

// Reset removes every series.
func (m *Metrics) Reset() {
	m.requests.Reset()
	m.duration.Reset()
}

func (r Request) labelValues() []string {
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	ns := def(r.Namespace, "default")
	code := r.HTTPCode
	if code == 0 {
		code = 200
	}
	protocol := def(r.Protocol, "grpc")
	grpcStatus := ""
	if protocol == "grpc" {
		grpcStatus = strconv.Itoa(int(r.GRPCCode))
	}
	return []string{
		def(r.Reporter, "destination"), def(r.SourceWorkload, "istio-ingressgateway"), def(r.SourceNS, "istio-system"),
		r.Service + "." + ns + ".svc.cluster.local", r.Service, ns,
		def(r.Workload, r.Service+"-"+r.Version), ns, r.Version, r.Service,
		protocol, strconv.Itoa(code), grpcStatus, def(r.ResponseFlags, "-"),
	}
}
