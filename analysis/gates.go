package analysis

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// Options configures Gates.
type Options struct {
	// HTTPClient makes the Prometheus queries; nil means a client with a 15s timeout.
	HTTPClient *http.Client
	// DefaultPrometheus is the Prometheus URL for specs that name none.
	DefaultPrometheus string
	Logger            *slog.Logger
	// Now stamps the verdicts; nil means time.Now.
	Now func() time.Time
	// Egress, when set, checks every address the probe and the default Prometheus client
	// connect to, once the target's host name is resolved (ErrEgress): a spec's name that
	// resolves to a link-local, cloud-metadata or denied address is refused at dial time.
	Egress *rollout.EgressPolicy
}

// Gates runs all the gates of a rollout: its metric checks and its probe. It implements
// the controller's Gates port. It is safe for concurrent use; Close drops the probe's
// cached connections.
type Gates struct {
	prom  *Prometheus
	probe *Probe
	log   *slog.Logger
	now   func() time.Time
}

// New returns Gates.
func New(o Options) *Gates {
	var dial dialFunc
	if o.Egress != nil {
		dial = egressDialer(o.Egress)
		if o.HTTPClient == nil {
			o.HTTPClient = egressClient(dial)
		}
	}
	g := &Gates{
		prom:  NewPrometheus(PrometheusOptions{HTTPClient: o.HTTPClient, DefaultAddress: o.DefaultPrometheus, Logger: o.Logger, Now: o.Now}),
		probe: NewProbe(o.Logger, o.Now),
		log:   o.Logger,
		now:   o.Now,
	}
	g.probe.dial = dial
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g
}

// Prometheus returns the metric gate.
func (g *Gates) Prometheus() *Prometheus { return g.prom }

// Probe returns the gRPC probe.
func (g *Gates) Probe() *Probe { return g.probe }

// Close closes the probe's connections.
func (g *Gates) Close() error { return g.probe.Close() }

// Check is CheckStep for a step known only by its weights: the vs-stable gates start a new
// step's counts when the canary weight changes.
func (g *Gates) Check(ctx context.Context, doc *rollout.Document, w rollout.Weights) []rollout.Verdict {
	return g.CheckStep(ctx, doc, rollout.StepKey{Rollout: doc.Name(), Step: w.Canary}, w)
}

// CheckStep runs the gates doc.Spec.Gates(w.Canary) names, at once, and returns their
// verdicts in that order: one per metric while the canary has traffic (w.Canary > 0), then
// the probe's. The vs-stable gates count from the start of the step key names; at weight 0
// they only take a look, so that the next step counts from it. A gate that cannot decide
// returns an Error or Inconclusive verdict, never Pass; a gate that panics returns an Error
// verdict that says so, and the panic goes no further.
func (g *Gates) CheckStep(ctx context.Context, doc *rollout.Document, key rollout.StepKey, w rollout.Weights) []rollout.Verdict {
	var metrics []*rollout.Metric
	var looks []*rollout.Metric // vs-stable gates at weight 0: a baseline look, no verdict
	if a := doc.Spec.Analysis; a != nil {
		for i := range a.Metrics {
			switch m := &a.Metrics[i]; {
			case w.Canary > 0:
				metrics = append(metrics, m)
			case m.VsStable():
				looks = append(looks, m)
			}
		}
	}
	n := len(metrics)
	if doc.Spec.Probe != nil {
		n++
	}
	verdicts := make([]rollout.Verdict, n)
	var wg sync.WaitGroup
	for i, m := range metrics {
		if m.VsStable() {
			wg.Go(func() {
				verdicts[i] = g.guard(m.GateName(), func() rollout.Verdict { v, _ := g.prom.checkStep(ctx, doc, m, key, w); return v })
			})
			continue
		}
		wg.Go(func() {
			verdicts[i] = g.guard(m.GateName(), func() rollout.Verdict { return g.prom.Check(ctx, doc, m) })
		})
	}
	for _, m := range looks {
		wg.Go(func() {
			g.guard(m.GateName(), func() rollout.Verdict { v, _ := g.prom.checkStep(ctx, doc, m, key, w); return v })
		})
	}
	if doc.Spec.Probe != nil {
		wg.Go(func() {
			verdicts[n-1] = g.guard(rollout.ProbeGate, func() rollout.Verdict { return g.probe.Check(ctx, doc.Spec.Probe) })
		})
	}
	wg.Wait()
	return verdicts
}

// guard runs one gate and turns a panic in it into an Error verdict of that gate, so a bug
// or a hostile answer costs one check of one rollout, never the daemon. The stack goes to
// the log; the verdict says only what panicked.
func (g *Gates) guard(gate string, check func() rollout.Verdict) (v rollout.Verdict) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("gate panicked", "gate", gate, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			v = rollout.Verdict{Gate: gate, Time: g.now(), Result: rollout.Error,
				Reason: fmt.Sprintf("gate %s panicked: %v", gate, r)}
		}
	}()
	return check()
}
