package rollout

import (
	"fmt"
	"time"
)

// APIVersion and Kind identify a Rollout document.
const (
	APIVersion = "canaryd.io/v1alpha1"
	Kind       = "Rollout"
)

// Built-in metric templates (analysis renders them on Istio's standard metrics).
const (
	TemplateSuccessRate = "grpc-success-rate"
	TemplateLatencyP99  = "grpc-latency-p99"
	TemplateRequestRate = "grpc-request-rate"
)

// Templates lists the built-in metric templates.
var Templates = []string{TemplateSuccessRate, TemplateLatencyP99, TemplateRequestRate, TemplateErrorsVsStable, TemplateLatencyVsStable}

// ProbeGate is the gate name of the gRPC probe's verdicts.
const ProbeGate = "probe"

// What a metric check that finds no data counts as.
const (
	OnNoDataHold = "hold"
	OnNoDataFail = "fail"
)

// Defaults applied by Parse where the spec is silent.
const (
	DefaultInterval     = 30 * time.Second
	DefaultFailureLimit = 1
	DefaultWindow       = time.Minute
	DefaultProbeCount   = 1
	DefaultProbeTimeout = 5 * time.Second
)

// Document is one Rollout document as written in YAML.
type Document struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`

	// File is where the document was read from, Index its position among the file's documents.
	File  string `yaml:"-"`
	Index int    `yaml:"-"`
	// Problems are the document's own validation problems; a document is valid when
	// there are none.
	Problems Problems `yaml:"-"`
	// Invalidated, when not empty, marks the last valid version of a spec whose version in
	// the repo no longer validates, and holds that version's problems. The rollout keeps
	// running on this document — its gates check, a failing canary rolls back — but takes
	// no step forward and starts no run until the spec is fixed.
	Invalidated Problems `yaml:"-"`

	positions map[string]pos
}

// Position returns the line and column where the field at path (such as "spec.steps[1]")
// or its nearest written parent is, or 0, 0 when unknown.
func (d *Document) Position(path string) (line, col int) {
	p := d.posAt(path)
	return p.line, p.col
}

// posAt is Position as one value.
func (d *Document) posAt(path string) pos {
	dec := decoder{at: d.positions}
	if dec.at == nil {
		return pos{}
	}
	return dec.where(path)
}

// Metadata names a rollout.
type Metadata struct {
	Name string `yaml:"name"`
}

// Name returns the rollout's name.
func (d *Document) Name() string { return d.Metadata.Name }

// Spec is what a rollout drives and how.
type Spec struct {
	VirtualService ObjectRef `yaml:"virtualService"`
	// Route names the http route of the VirtualService (a string; empty means the only
	// route that holds both subsets), or a Gateway API route object in its stead.
	Route    RouteRef  `yaml:"route"`
	Host     string    `yaml:"host"`
	Stable   string    `yaml:"stable"`
	Canary   string    `yaml:"canary"`
	Manifest string    `yaml:"manifest"`
	Steps    []int     `yaml:"steps"`
	Schedule string    `yaml:"schedule"`
	TimeZone string    `yaml:"timeZone"`
	Analysis *Analysis `yaml:"analysis"`
	Probe    *Probe    `yaml:"probe"`
	// ProgressDeadline is how long a step may go without being able to decide (no
	// traffic, no data, gates that neither pass nor trip) before OnProgressDeadline is
	// taken; 0 means no deadline.
	ProgressDeadline   Duration `yaml:"progressDeadline"`
	OnProgressDeadline string   `yaml:"onProgressDeadline"`
}

// ObjectRef names a namespaced Kubernetes object.
type ObjectRef struct {
	Namespace string `yaml:"namespace"`
	Name      string `yaml:"name"`
}

func (r ObjectRef) String() string { return r.Namespace + "/" + r.Name }

// Analysis says how the canary's metrics gate each step.
type Analysis struct {
	Interval Duration `yaml:"interval"`
	Bake     Duration `yaml:"bake"`
	// PostPromotionBake is how long the gates keep checking the canary at 100 % before the
	// rollout is Succeeded; unset means Bake, 0s means none.
	PostPromotionBake Duration   `yaml:"postPromotionBake"`
	FailureLimit      int        `yaml:"failureLimit"`
	Prometheus        Prometheus `yaml:"prometheus"`
	Metrics           []Metric   `yaml:"metrics"`
}

// Prometheus is where metrics are queried.
type Prometheus struct {
	Address string `yaml:"address"`
}

// Metric is one Prometheus check: a built-in template or a custom query, with bounds.
type Metric struct {
	Name     string `yaml:"name"`
	Template string `yaml:"template"`
	// Query is a text/template of PromQL with the variables .Namespace .Host .Service
	// .Stable .Canary .Window .Rollout.
	Query       string     `yaml:"query"`
	Min         *Threshold `yaml:"min"`
	Max         *Threshold `yaml:"max"`
	Window      Duration   `yaml:"window"`
	MinRequests int        `yaml:"minRequests"`
	OnNoData    string     `yaml:"onNoData"`
	// CompareToStable, when set, also fails the check when the canary is worse than the
	// stable subset by more than Margin in the same window.
	CompareToStable *Compare `yaml:"compareToStable"`
	// Alpha and Tolerance tune the vs-stable gates (see TemplateErrorsVsStable); nil means
	// DefaultAlpha and DefaultTolerance.
	Alpha     *float64 `yaml:"alpha"`
	Tolerance *float64 `yaml:"tolerance"`
}

// GateName is the name the metric's verdicts carry: its name, or else its template.
func (m *Metric) GateName() string {
	if m.Name != "" {
		return m.Name
	}
	return m.Template
}

// Compare bounds how much worse than the stable subset the canary may be.
type Compare struct {
	Margin Threshold `yaml:"margin"`
}

// Probe is a synthetic gRPC call, written as a grpcurl command line.
type Probe struct {
	GRPCurl string `yaml:"grpcurl"`
	// Expect is a substring the reply must contain, or a /regular expression/.
	Expect     string   `yaml:"expect"`
	Count      int      `yaml:"count"`
	MinSuccess *float64 `yaml:"minSuccess"`
	Timeout    Duration `yaml:"timeout"`
	// CanaryAddress, when set, is where the calls go instead of the command's address:
	// straight to the canary subset (its Service or pod address), so the probe tests the
	// canary at any weight, 0 % included. StableAddress adds the same calls to stable as a
	// control, which never counts against the canary.
	CanaryAddress string `yaml:"canaryAddress"`
	StableAddress string `yaml:"stableAddress"`

	// Command is GRPCurl parsed; set by Parse.
	Command *GRPCurlCommand `yaml:"-"`
}

// Duration is a time.Duration written as Go writes it ("30s", "5m", "500ms").
type Duration struct {
	time.Duration
	Set bool
}

func (d Duration) String() string { return d.Duration.String() }

// Threshold is a bound on a metric: a number, or a duration such as "500ms". A duration is
// expressed in milliseconds for the latency template (Istio's histograms are in ms) and in
// seconds otherwise (Prometheus' base unit).
type Threshold struct {
	Value float64
	// Dur is set when the bound was written as a duration.
	Dur  time.Duration
	Text string
}

// For returns the bound's value in the unit of the given metric.
func (t Threshold) For(m *Metric) float64 {
	if t.Dur == 0 {
		return t.Value
	}
	if m.Template == TemplateLatencyP99 || m.Template == TemplateLatencyVsStable {
		return float64(t.Dur) / float64(time.Millisecond)
	}
	return t.Dur.Seconds()
}

func (t Threshold) String() string {
	if t.Text != "" {
		return t.Text
	}
	return fmt.Sprint(t.Value)
}
