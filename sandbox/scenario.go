package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/gateway"
	"github.com/canarydio/canaryd/sandbox/traffic"
	"github.com/canarydio/canaryd/server"
)

// Scenario is a story the demo plays.
type Scenario string

// The scenarios of the seed tutorial.
const (
	// Success: a healthy v2 goes 0 → 40 → 100 and the rollout Succeeds.
	Success Scenario = "success"
	// Fail: once the gateway routes 40% to it, v2 answers UNAVAILABLE on 20% of calls
	// (a canary that breaks under load, past the probe at 0%); canaryd rolls back at 40 and
	// Git ends at 100/0 with a Rollout-Reason.
	Fail Scenario = "fail"
	// Revert: after the 40% step a person reverts canaryd's commit and pushes; canaryd
	// is Overridden, follows Git back to v1 and pushes nothing after the person.
	Revert Scenario = "revert"
)

// Scenarios lists every scenario.
var Scenarios = []Scenario{Success, Fail, Revert}

// ParseScenario returns the scenario named s.
func ParseScenario(s string) (Scenario, error) {
	if slices.Contains(Scenarios, Scenario(s)) {
		return Scenario(s), nil
	}
	return "", fmt.Errorf("unknown scenario %q: want success, fail or revert", s)
}

// FailRate is the share of v2's calls that fail in the fail scenario.
const FailRate = 0.2

// Observation is what the demo sees at one moment, for the live view.
type Observation struct {
	Time     time.Time
	Scenario Scenario
	// Rollout is canaryd's status; nil while its API does not answer (APIErr says why).
	Rollout *server.Rollout
	APIErr  error
	Gateway gateway.Status
	Traffic traffic.Snapshot
	// V1 and V2 are the greeters' instance names.
	V1, V2 string
	// Head is the newest commit of the remote.
	Head Commit
	// Notes are what the scenario did so far ("v2 now fails 20% of calls"), oldest first.
	Notes []string
}

// PlayOptions tunes Play.
type PlayOptions struct {
	// Timeout bounds the scenario; 0 means 3 minutes.
	Timeout time.Duration
	// Poll is how often the world is looked at; 0 means 250ms.
	Poll time.Duration
	// Settle is how long the revert scenario watches that canaryd pushes nothing after the
	// person's revert; 0 means 8s (more than a tick and a poll of canaryd's).
	Settle time.Duration
	// Observe, when set, is called with every observation, on Play's goroutine.
	Observe func(Observation)
}

// Result is how a scenario ended.
type Result struct {
	Scenario Scenario
	// OK says the scenario ended as it should; Why says how it ended, or what went wrong.
	OK  bool
	Why string
	// Phase is canaryd's last phase; Weights the weights in Git at the end, in Manifest
	// (empty means the VirtualService's, sandbox.Manifest).
	Phase    rollout.Phase
	Weights  rollout.Weights
	Manifest string
	Steps    []StepReport
	Log      []Commit
	Started  time.Time
	Duration time.Duration
	// Split is what the traffic saw during the whole scenario.
	Split traffic.Counts
	// Zone is where WriteSummary shows times; nil means the local zone.
	Zone *time.Location
}

// player holds a scenario's progress.
type player struct {
	w       *World
	sc      Scenario
	o       PlayOptions
	start   time.Time
	notes   []string
	revert  string    // the person's revert commit
	quiet   time.Time // since when the revert scenario has looked finished
	routed  time.Time // when the gateway was first seen routing by the 40% commit
	failing bool      // v2 has been told to fail (the fail scenario)
}

// Play runs scenario sc on the world until it ends as it should, ends otherwise, or times
// out, and reports how. It returns an error only when ctx ends first (Ctrl-C).
func (w *World) Play(ctx context.Context, sc Scenario, o PlayOptions) (Result, error) {
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Settle <= 0 {
		o.Settle = 8 * time.Second
	}
	p := &player{w: w, sc: sc, o: o, start: time.Now()}
	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(o.Poll)
	defer tick.Stop()
	var last Observation
	for {
		obs, log := p.observe(ctx)
		last = obs
		if o.Observe != nil {
			o.Observe(obs)
		}
		if done, ok, why := p.step(ctx, obs, log); done {
			return p.result(ctx, ok, why, obs), nil
		}
		select {
		case <-ctx.Done():
			return p.result(context.WithoutCancel(ctx), false, "interrupted", last), ctx.Err()
		case <-w.ServeExited():
			return p.result(ctx, false, "canaryd serve exited; see "+filepath.Join(w.Workdir, "logs", "canaryd.log"), last), nil
		case <-deadline.C:
			return p.result(ctx, false, fmt.Sprintf("timed out after %v in %s", o.Timeout, describe(last)), last), nil
		case <-tick.C:
		}
	}
}

func (p *player) note(format string, args ...any) {
	p.notes = append(p.notes, time.Now().Format("15:04:05")+" "+fmt.Sprintf(format, args...))
}

func (p *player) observe(ctx context.Context) (Observation, []Commit) {
	w := p.w
	obs := Observation{
		Time: time.Now(), Scenario: p.sc, Gateway: w.Gateway.Status(), Traffic: w.Traffic.Snapshot(),
		V1: w.V1.Instance(), V2: w.V2.Instance(), Notes: slices.Clone(p.notes),
	}
	if !w.opts.NoServe {
		ro, err := w.Rollout(ctx)
		if err == nil {
			obs.Rollout = &ro
		}
		obs.APIErr = err
	}
	log, err := Log(ctx, w.Remote)
	if err == nil && len(log) > 0 {
		obs.Head = log[0]
	}
	return obs, log
}

func describe(o Observation) string {
	s := "phase unknown"
	if o.Rollout != nil {
		s = fmt.Sprintf("phase %s at %s", o.Rollout.Phase, o.Rollout.Weights)
	}
	return fmt.Sprintf("%s, gateway at %d/%d", s, o.Gateway.Stable, o.Gateway.Canary)
}

// step performs the scenario's actions due now and tells whether the scenario is over.
func (p *player) step(ctx context.Context, obs Observation, log []Commit) (done, ok bool, why string) {
	if p.sc == Fail && !p.failing && obs.Gateway.Canary == 40 {
		p.w.V2.SetErrors(FailRate, codes.Unavailable)
		p.failing = true
		p.note("v2 now answers UNAVAILABLE on %.0f%% of calls", FailRate*100)
	}
	if p.sc == Revert && p.revert == "" {
		// A person notices the canary once it takes traffic: the gateway has routed by the
		// 40% commit for a second.
		if c, found := stepCommit(log, 40); found && p.seenRouted(obs, c) {
			sha, err := PersonReverts(ctx, p.w.Workdir, p.w.Remote, c.SHA)
			if err != nil {
				return true, false, fmt.Sprintf("the person's revert of %s: %v", c.Short(), err)
			}
			p.revert = sha
			p.note("Pat Person reverted %s (the 40%% step) as %.12s and pushed", c.Short(), sha)
			return false, false, ""
		}
	}
	if obs.Rollout == nil {
		return false, false, ""
	}
	phase := obs.Rollout.Phase
	switch p.sc {
	case Success:
		return p.endSuccess(phase, obs, log)
	case Fail:
		return p.endFail(phase, obs, log)
	default:
		return p.endRevert(phase, obs, log)
	}
}

// seenRouted reports whether the gateway has routed by commit c for a second.
func (p *player) seenRouted(obs Observation, c Commit) bool {
	if obs.Gateway.Commit != c.SHA {
		return false
	}
	if p.routed.IsZero() {
		p.routed = obs.Time
	}
	return obs.Time.Sub(p.routed) >= time.Second
}

// stepCommit returns canaryd's newest commit that put the canary at canary percent.
func stepCommit(log []Commit, canary int) (Commit, bool) {
	for _, c := range log {
		if c.ByCanaryd() && strings.Contains(c.Trailers[gitops.TrailerWeights], fmt.Sprintf("v2=%d", canary)) &&
			c.Trailers[gitops.TrailerReason] == "" {
			return c, true
		}
	}
	return Commit{}, false
}

// atHead reports whether Git's head holds w and the gateway routes by it.
func atHead(obs Observation, log []Commit, w rollout.Weights) bool {
	return len(log) > 0 && obs.Gateway.Commit == log[0].SHA &&
		obs.Gateway.Stable == w.Stable && obs.Gateway.Canary == w.Canary
}

func (p *player) endSuccess(phase rollout.Phase, obs Observation, log []Commit) (bool, bool, string) {
	switch phase {
	case rollout.Succeeded:
		if !atHead(obs, log, rollout.CanaryAt(100)) {
			return false, false, "" // the gateway follows within a second
		}
		if _, ok := stepCommit(log, 40); !ok {
			return true, false, "Succeeded, but Git holds no commit of the 40% step"
		}
		return true, true, fmt.Sprintf("Succeeded: v2 takes 100%% of the traffic, Git at 0/100 (%s)", log[0].Short())
	case rollout.RolledBack, rollout.Aborted, rollout.Overridden, rollout.Invalid:
		return true, false, fmt.Sprintf("a healthy canary ended %s: %s", phase, obs.Rollout.Message)
	}
	return false, false, ""
}

func (p *player) endFail(phase rollout.Phase, obs Observation, log []Commit) (bool, bool, string) {
	switch phase {
	case rollout.RolledBack:
		if !atHead(obs, log, rollout.CanaryAt(0)) {
			return false, false, ""
		}
		head := log[0]
		if head.Trailers[gitops.TrailerReason] == "" {
			return true, false, fmt.Sprintf("RolledBack, but the head %s has no %s trailer", head.Short(), gitops.TrailerReason)
		}
		if _, ok := stepCommit(log, 100); ok {
			return true, false, "RolledBack, but only after the failing canary reached 100%"
		}
		return true, true, fmt.Sprintf("RolledBack at 40%%: Git back at 100/0 (%s), %s: %s",
			head.Short(), gitops.TrailerReason, head.Trailers[gitops.TrailerReason])
	case rollout.Succeeded, rollout.Aborted, rollout.Overridden, rollout.Invalid:
		return true, false, fmt.Sprintf("a failing canary ended %s: %s", phase, obs.Rollout.Message)
	}
	return false, false, ""
}

func (p *player) endRevert(phase rollout.Phase, obs Observation, log []Commit) (bool, bool, string) {
	switch {
	case p.revert == "" && phase.Terminal():
		return true, false, fmt.Sprintf("the rollout ended %s before the person could revert the 40%% step", phase)
	case p.revert == "":
		return false, false, ""
	case len(log) > 0 && log[0].SHA != p.revert:
		return true, false, fmt.Sprintf("%s pushed %s after the person's revert", log[0].Author, log[0].Short())
	case phase != rollout.Overridden || !atHead(obs, log, rollout.CanaryAt(0)):
		if phase.Terminal() {
			return true, false, fmt.Sprintf("after the person's revert the rollout ended %s, not Overridden", phase)
		}
		p.quiet = time.Time{}
		return false, false, ""
	}
	if p.quiet.IsZero() {
		p.quiet = time.Now()
	}
	if time.Since(p.quiet) < p.o.Settle {
		return false, false, ""
	}
	return true, true, fmt.Sprintf("Overridden: the person's revert %.12s is the newest commit, traffic back on v1, canaryd pushed nothing for %v after it",
		p.revert, p.o.Settle)
}

// result gathers the summary: canaryd's history and the remote's log.
func (p *player) result(ctx context.Context, ok bool, why string, obs Observation) Result {
	r := Result{Scenario: p.sc, OK: ok, Why: why, Started: p.start, Duration: time.Since(p.start), Split: obs.Traffic.Total}
	if obs.Rollout != nil {
		r.Phase = obs.Rollout.Phase
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var errs []error
	var err error
	if r.Log, err = Log(ctx, p.w.Remote); err != nil {
		errs = append(errs, err)
	}
	r.Manifest = p.w.Sample.Manifest
	if r.Weights, err = p.w.Sample.WeightsAt(ctx, p.w.Remote, "main"); err != nil {
		errs = append(errs, err)
	}
	if !p.w.opts.NoServe {
		evs, err := p.w.History(ctx, 1000)
		if err != nil {
			errs = append(errs, err)
		}
		r.Steps = Steps(evs)
	}
	if err := errors.Join(errs...); err != nil && r.OK {
		r.OK, r.Why = false, r.Why+"; but the summary is incomplete: "+err.Error()
	}
	return r
}
