package analysis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/canarydio/canaryd/rollout"
)

// DefaultQueryTimeout bounds one Prometheus query when PrometheusOptions sets none.
const DefaultQueryTimeout = 10 * time.Second

// errNoData marks a query that returned nothing usable: no series, NaN or ±Inf.
var errNoData = errors.New("no data")

// PrometheusOptions configures a Prometheus gate.
type PrometheusOptions struct {
	// HTTPClient makes the queries; nil means a client with a 15s timeout.
	HTTPClient *http.Client
	// DefaultAddress is used for specs that name no Prometheus.
	DefaultAddress string
	// QueryTimeout bounds each query; 0 means DefaultQueryTimeout.
	QueryTimeout time.Duration
	Logger       *slog.Logger
	// Now stamps the verdicts; nil means time.Now. Queries are evaluated at Prometheus'
	// own current time.
	Now func() time.Time
}

// Prometheus checks metric gates with instant queries against a Prometheus server (the
// spec's, or the default). It is safe for concurrent use.
type Prometheus struct {
	client   *http.Client
	def      string
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time
	mu       sync.Mutex
	apis     map[string]promv1.API
	redactor map[string]*strings.Replacer
	tracker  tracker // the vs-stable gates' counters
}

// NewPrometheus returns a Prometheus gate.
func NewPrometheus(o PrometheusOptions) *Prometheus {
	p := &Prometheus{client: o.HTTPClient, def: o.DefaultAddress, timeout: o.QueryTimeout, log: o.Logger, now: o.Now,
		apis: map[string]promv1.API{}, redactor: map[string]*strings.Replacer{}}
	if p.client == nil {
		p.client = &http.Client{Timeout: 15 * time.Second}
	}
	if p.timeout <= 0 {
		p.timeout = DefaultQueryTimeout
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// Check evaluates metric m of doc for the canary and returns its verdict:
//
//   - Pass: the value is within min/max (and, with compareToStable, not worse than the
//     stable subset's by more than the margin);
//   - Fail: it is not, or there is no data and onNoData is "fail";
//   - Inconclusive: no series, NaN, or fewer than minRequests canary requests in the
//     window, with onNoData "hold";
//   - Error: Prometheus could not be asked (unreachable, timeout, HTTP error), the query is
//     invalid, or it returned several series.
//
// The evidence holds each rendered query with its value, threshold and sample count.
func (p *Prometheus) Check(ctx context.Context, doc *rollout.Document, m *rollout.Metric) rollout.Verdict {
	if m.VsStable() {
		v, _ := p.checkStep(ctx, doc, m, rollout.StepKey{Rollout: doc.Name()}, rollout.CanaryAt(1))
		return v
	}
	c := &check{p: p, m: m, v: rollout.Verdict{Gate: m.GateName(), Time: p.now()}}
	addr := p.def
	if doc.Spec.Analysis != nil && doc.Spec.Analysis.Prometheus.Address != "" {
		addr = doc.Spec.Analysis.Prometheus.Address
	}
	if addr == "" {
		return c.errorf("no Prometheus address: set spec.analysis.prometheus.address or the daemon's prometheus.address")
	}
	promAPI, err := p.api(addr)
	if err != nil {
		return c.errorf("%v", err)
	}
	c.api, c.redact = promAPI, p.redactFor(addr)
	c.run(ctx, Vars(doc, m))
	return c.v
}

// api returns the cached client of addr.
func (p *Prometheus) api(addr string) (promv1.API, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.apis[addr]; ok {
		return a, nil
	}
	c, err := api.NewClient(api.Config{Address: addr, Client: p.client})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %s: %w", redactURL(addr), err)
	}
	a := promv1.NewAPI(c)
	p.apis[addr] = a
	return a, nil
}

// redactFor returns a replacer that hides addr's credentials in error texts.
func (p *Prometheus) redactFor(addr string) *strings.Replacer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.redactor[addr]; ok {
		return r
	}
	var pairs []string
	if u, err := url.Parse(addr); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			pairs = append(pairs, u.User.String()+"@", u.User.Username()+":xxxxx@", pw, "xxxxx")
		}
	}
	r := strings.NewReplacer(pairs...)
	p.redactor[addr] = r
	return r
}

// redactURL returns addr with its password hidden.
func redactURL(addr string) string {
	u, err := url.Parse(addr)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// check is one evaluation of one metric.
type check struct {
	p      *Prometheus
	m      *rollout.Metric
	api    promv1.API
	redact *strings.Replacer
	v      rollout.Verdict
}

func (c *check) errorf(format string, args ...any) rollout.Verdict {
	c.v.Result = rollout.Error
	c.v.Reason = fmt.Sprintf(format, args...)
	if c.redact != nil {
		c.v.Reason = c.redact.Replace(c.v.Reason)
	}
	return c.v
}

// noData records an inconclusive measurement, which onNoData turns into a hold or a fail.
func (c *check) noData(why string) {
	c.v.Result = rollout.Inconclusive
	if c.m.OnNoData == rollout.OnNoDataFail {
		c.v.Result = rollout.Fail
	}
	c.v.Reason = fmt.Sprintf("%s (onNoData: %s)", why, onNoData(c.m))
}

func onNoData(m *rollout.Metric) string {
	if m.OnNoData == "" {
		return rollout.OnNoDataHold
	}
	return m.OnNoData
}

// run fills c.v: the request count, the canary's value, its bounds and the comparison.
func (c *check) run(ctx context.Context, vars rollout.QueryVars) {
	samples, ok := c.requests(ctx, vars)
	if !ok {
		return
	}
	q, err := Render(c.m, vars)
	if err != nil {
		c.errorf("%v", err)
		return
	}
	value, err := c.query(ctx, q)
	ev := rollout.Evidence{Query: q, Value: value, Threshold: thresholdText(c.m), Samples: samples}
	if err != nil {
		ev.Value = 0
		ev.Reason = err.Error()
		c.v.Evidence = append(c.v.Evidence, ev)
		if errors.Is(err, errNoData) {
			c.noData("canary: " + err.Error())
		} else {
			c.errorf("query %s: %v", c.m.GateName(), err)
		}
		return
	}
	if why := outOfBounds(c.m, value); why != "" {
		ev.Reason = why
		c.v.Evidence = append(c.v.Evidence, ev)
		c.v.Result, c.v.Reason = rollout.Fail, "canary: "+why
		return
	}
	c.v.Evidence = append(c.v.Evidence, ev)
	c.v.Result, c.v.Reason = rollout.Pass, fmt.Sprintf("canary: %s is within %s", formatValue(value), thresholdText(c.m))
	if c.m.CompareToStable != nil {
		c.compare(ctx, vars, value)
	}
}

// requests counts the canary's gRPC requests in the window, for minRequests; it returns
// -1 without asking when the metric sets no minRequests and is a custom query. ok is false
// when the verdict is already decided.
func (c *check) requests(ctx context.Context, vars rollout.QueryVars) (n int, ok bool) {
	if c.m.MinRequests <= 0 && c.m.Query != "" {
		return 0, true
	}
	q, err := render(requestCountQuery, vars)
	if err != nil {
		c.errorf("%v", err)
		return 0, false
	}
	value, err := c.query(ctx, q)
	switch {
	case errors.Is(err, errNoData):
		value = 0
	case err != nil:
		c.errorf("query the request count of %s: %v", c.m.GateName(), err)
		return 0, false
	}
	n = int(math.Round(value))
	if n < c.m.MinRequests {
		c.v.Evidence = append(c.v.Evidence, rollout.Evidence{Query: q, Value: value,
			Threshold: fmt.Sprintf(">= %d requests", c.m.MinRequests), Samples: n})
		c.noData(fmt.Sprintf("canary: %d gRPC requests in %s, fewer than minRequests %d", n, vars.Window, c.m.MinRequests))
		return n, false
	}
	return n, true
}
