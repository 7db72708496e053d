package server

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// fakeSource is a hand-written Source: rollouts and their histories in memory, actions
// applied with the phase rules of a rollout's life (docs/spec.md, "Phases").
type fakeSource struct {
	mu       sync.Mutex
	rollouts map[string]*Rollout
	history  map[string][]rollout.Event // oldest first; Seq 1..n
	ready    error
	now      func() time.Time
}

func newFakeSource(now func() time.Time) *fakeSource {
	return &fakeSource{rollouts: map[string]*Rollout{}, history: map[string][]rollout.Event{}, now: now}
}

func (f *fakeSource) add(r Rollout, evs ...rollout.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollouts[r.Name] = &r
	for _, ev := range evs {
		f.appendLocked(r.Name, ev)
	}
}

func (f *fakeSource) appendLocked(name string, ev rollout.Event) {
	ev.Rollout = name
	ev.Seq = uint64(len(f.history[name]) + 1)
	f.history[name] = append(f.history[name], ev)
}

func (f *fakeSource) Rollouts(context.Context) ([]Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rs []Rollout
	for _, r := range f.rollouts {
		rs = append(rs, *r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	return rs, nil
}

func (f *fakeSource) Rollout(_ context.Context, name string) (Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rollouts[name]
	if !ok {
		return Rollout{}, ErrNotFound
	}
	return *r, nil
}

func (f *fakeSource) History(_ context.Context, name string, before uint64, limit int) ([]rollout.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.rollouts[name]; !ok {
		return nil, ErrNotFound
	}
	h := f.history[name]
	var out []rollout.Event
	for i := len(h) - 1; i >= 0 && len(out) < limit; i-- {
		if before == 0 || h[i].Seq < before {
			out = append(out, h[i])
		}
	}
	return out, nil
}

func (f *fakeSource) Act(_ context.Context, name, action, actor, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rollouts[name]
	if !ok {
		return ErrNotFound
	}
	active := r.Phase == rollout.Progressing || r.Phase == rollout.Paused || r.Phase == rollout.Overridden
	var next rollout.Phase
	var kind rollout.EventKind
	switch {
	case action == "pause" && r.Phase == rollout.Progressing:
		next, kind = rollout.Paused, rollout.EventPaused
	case action == "resume" && (r.Phase == rollout.Paused || r.Phase == rollout.Overridden):
		next, kind = rollout.Progressing, rollout.EventResumed
	case action == "promote" && active && r.Step < r.Steps-1:
		next, kind = rollout.Progressing, rollout.EventPromoted
		r.Step++
	case (action == PromoteFull || action == "promote") && active:
		next, kind = rollout.Succeeded, rollout.EventPromoted
		r.Weights, r.Step = rollout.CanaryAt(100), r.Steps
	case action == "undo" && (active || r.Phase == rollout.Succeeded):
		next, kind = rollout.RolledBack, rollout.EventRolledBack
		r.Weights, r.Step = rollout.CanaryAt(0), 0
	case action == "abort" && active:
		next, kind = rollout.Aborted, rollout.EventAborted
		r.Weights = rollout.CanaryAt(0)
	case action == "retry" && r.Phase.Terminal():
		next, kind = rollout.Progressing, rollout.EventStarted
		r.Run++
	default:
		return fmt.Errorf("%s %q in phase %s: %w", action, name, r.Phase, ErrRefused)
	}
	r.Phase = next
	r.Message = fmt.Sprintf("%s by %s: %s", action, actor, reason)
	f.appendLocked(name, rollout.Event{Time: f.now(), Kind: kind, Run: r.Run, Step: r.Step - 1,
		Weights: r.Weights, Phase: next, Commit: r.Commit, Actor: actor, Reason: reason})
	return nil
}

func (f *fakeSource) Ready(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

// t0 is the fixed start of the sample histories.
var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// sampleSource holds three rollouts: grpc-helloworld-py progressing at 40 % with 20 events
// (passes, a failure, an inconclusive check and two step commits), payments succeeded, and
// broken, whose spec does not validate. Its clock stands at t0+10m.
func sampleSource() *fakeSource {
	now := t0.Add(10 * time.Minute)
	f := newFakeSource(func() time.Time { return now })
	f.add(Rollout{
		Name: "grpc-helloworld-py", Phase: rollout.Progressing, Run: 1, Step: 2, Steps: 3,
		Weights: rollout.CanaryAt(40), Stable: "v1", Canary: "v2",
		LastVerdict: &rollout.Verdict{Gate: "probe", Result: rollout.Pass, Time: t0.Add(9*time.Minute + 30*time.Second)},
		Commit:      "4f1c2a9d0e7b5c3a1f2e4d6c8b0a9e7d5c3b1a2f", NextTick: now.Add(42 * time.Second),
		Message: "step 2/3 at 60/40; baking",
	}, helloHistory()...)
	f.add(Rollout{Name: "payments", Phase: rollout.Succeeded, Run: 3, Step: 2, Steps: 2, Weights: rollout.CanaryAt(100),
		Stable: "stable", Canary: "canary", Commit: "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d", Message: "succeeded: canary canary at 100%"},
		rollout.Event{Time: t0, Kind: rollout.EventStarted, Run: 3, Step: 0, Weights: rollout.CanaryAt(50), Phase: rollout.Progressing},
		rollout.Event{Time: t0.Add(time.Minute), Kind: rollout.EventStep, Run: 3, Step: 1, Weights: rollout.CanaryAt(100), Phase: rollout.Succeeded, Commit: "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"},
	)
	f.add(Rollout{Name: "broken", Phase: rollout.Invalid, Message: "the spec does not validate",
		Problems: []rollout.Problem{{File: "rollouts/broken.yaml", Line: 11, Col: 14, Field: "spec.steps[1]", Msg: "140 is outside 0..100"}}})
	return f
}

// helloHistory is 20 events of one run: started at 0 %, checks at 0 %, a step to 40 % with
// its commit, checks at 40 % (one fail, one inconclusive), a paused and a resumed.
func helloHistory() []rollout.Event {
	const c1 = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
	const c2 = "4f1c2a9d0e7b5c3a1f2e4d6c8b0a9e7d5c3b1a2f"
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ev := func(d time.Duration, kind rollout.EventKind, step, canary int, commit string) rollout.Event {
		return rollout.Event{Time: at(d), Kind: kind, Run: 1, Step: step, Weights: rollout.CanaryAt(canary), Phase: rollout.Progressing, Commit: commit}
	}
	verdict := func(d time.Duration, step, canary int, commit, gate string, res rollout.Result, evd ...rollout.Evidence) rollout.Event {
		e := ev(d, rollout.EventVerdict, step, canary, commit)
		e.Verdict = &rollout.Verdict{Gate: gate, Result: res, Time: at(d), Evidence: evd}
		if res != rollout.Pass {
			e.Verdict.Reason = "success rate 0.91 below 0.99"
		}
		return e
	}
	rate := func(v float64) rollout.Evidence {
		return rollout.Evidence{Query: `sum(rate(istio_requests_total{destination_version="v2",grpc_response_status="0"}[1m])) / sum(rate(istio_requests_total{destination_version="v2"}[1m]))`,
			Value: v, Threshold: ">= 0.99", Samples: 57}
	}
	call := rollout.Evidence{Query: "grpcurl -plaintext gw:8080 helloworld.Greeter/SayHello", Value: 1, Code: "OK",
		Latency: 3 * time.Millisecond, Reply: `{"message": "Hello, Jack! I'm from v2!"}`, Backend: "v2"}
	evs := []rollout.Event{
		ev(0, rollout.EventStarted, 0, 0, c1),
		verdict(30*time.Second, 0, 0, c1, "prometheus", rollout.Pass, rate(1)),
		verdict(31*time.Second, 0, 0, c1, "probe", rollout.Pass, call),
		verdict(60*time.Second, 0, 0, c1, "prometheus", rollout.Pass, rate(0.998)),
		verdict(61*time.Second, 0, 0, c1, "probe", rollout.Pass, call),
		verdict(90*time.Second, 0, 0, c1, "prometheus", rollout.Pass, rate(1)),
		ev(2*time.Minute, rollout.EventIntent, 1, 40, c1),
		ev(2*time.Minute+2*time.Second, rollout.EventStep, 1, 40, c2),
		verdict(150*time.Second, 1, 40, c2, "prometheus", rollout.Pass, rate(0.995)),
		verdict(180*time.Second, 1, 40, c2, "prometheus", rollout.Fail, rate(0.91)),
		verdict(181*time.Second, 1, 40, c2, "probe", rollout.Pass, call),
		verdict(210*time.Second, 1, 40, c2, "prometheus", rollout.Inconclusive),
		verdict(240*time.Second, 1, 40, c2, "prometheus", rollout.Pass, rate(0.999)),
	}
	paused := ev(5*time.Minute, rollout.EventPaused, 1, 40, c2)
	paused.Phase, paused.Actor, paused.Reason = rollout.Paused, "alice@laptop", "watching the dashboards"
	resumed := ev(7*time.Minute, rollout.EventResumed, 1, 40, c2)
	resumed.Actor, resumed.Reason = "alice@laptop", "looks fine"
	evs = append(evs, paused, resumed,
		verdict(450*time.Second, 1, 40, c2, "prometheus", rollout.Pass, rate(1)),
		verdict(480*time.Second, 1, 40, c2, "probe", rollout.Pass, call),
		verdict(510*time.Second, 1, 40, c2, "prometheus", rollout.Pass, rate(0.997)),
		verdict(540*time.Second, 1, 40, c2, "prometheus", rollout.Pass, rate(1)),
		verdict(570*time.Second, 1, 40, c2, "probe", rollout.Pass, call),
	)
	return evs
}
