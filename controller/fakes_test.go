package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// fakeClock is a Clock whose time moves only when the test advances it. Its timers fire in
// deadline order, each at its own instant, and the test waits for the controller to settle
// after each (the tests run inside a synctest bubble).
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clk *fakeClock
	at  time.Time
	c   chan time.Time
	off bool
}

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{now: now} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clk: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		t.off = true
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.off
	t.off = true
	return was
}

// AdvanceTo moves the clock to `to`, firing every timer due on the way at its deadline.
func (c *fakeClock) AdvanceTo(to time.Time) {
	for {
		synctest.Wait()
		c.mu.Lock()
		c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool { return t.off })
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.at.After(to) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			c.now = to
			c.mu.Unlock()
			synctest.Wait()
			return
		}
		if next.at.After(c.now) {
			c.now = next.at
		}
		next.off = true
		next.c <- c.now
		c.mu.Unlock()
	}
}

// memStore is a Store in memory.
type memStore struct {
	mu      sync.Mutex
	states  map[string]rollout.State
	history map[string][]rollout.Event
}

func newMemStore() *memStore {
	return &memStore{states: map[string]rollout.State{}, history: map[string][]rollout.Event{}}
}

func (s *memStore) Save(st rollout.State, evs ...rollout.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[st.Rollout] = st
	for _, ev := range evs {
		ev.Seq = uint64(len(s.history[st.Rollout]) + 1)
		s.history[st.Rollout] = append(s.history[st.Rollout], ev)
	}
	return nil
}

func (s *memStore) State(name string) (rollout.State, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[name]
	return st, ok, nil
}

func (s *memStore) get(name string) rollout.State {
	st, _, _ := s.State(name)
	return st
}

func (s *memStore) events(name string, kind rollout.EventKind) []rollout.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []rollout.Event
	for _, ev := range s.history[name] {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// fakeRepo records commits; fail, when set, makes SetWeights fail.
type fakeRepo struct {
	mu      sync.Mutex
	commits []rollout.Commit
	fail    error
	tries   int // failed calls
}

func (r *fakeRepo) SetWeights(_ context.Context, _ *rollout.Document, c rollout.Commit) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		r.tries++
		return "", r.fail
	}
	r.commits = append(r.commits, c)
	return fmt.Sprintf("sha%d", len(r.commits)), nil
}

func (r *fakeRepo) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func (r *fakeRepo) failedTries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tries
}

func (r *fakeRepo) weights() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ws []int
	for _, c := range r.commits {
		ws = append(ws, c.Weights.Canary)
	}
	return ws
}

// fakeRouter records the weights applied to the cluster. With hold set, each call waits
// for hold to close first (an API server slow to answer).
type fakeRouter struct {
	mu      sync.Mutex
	applied []rollout.Weights
	hold    chan struct{}
}

func (r *fakeRouter) SetWeights(ctx context.Context, _ *rollout.Document, w rollout.Weights) error {
	r.mu.Lock()
	hold := r.hold
	r.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, w)
	return nil
}

func (r *fakeRouter) setHold(hold chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = hold
}

func (r *fakeRouter) canary() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.applied) == 0 {
		return 0
	}
	return r.applied[len(r.applied)-1].Canary
}

// fakeGates answers every expected gate with result(now).
type fakeGates struct {
	clk    Clock
	result func(now time.Time) rollout.Result
	mu     sync.Mutex
	checks int
}

func (g *fakeGates) Check(_ context.Context, doc *rollout.Document, w rollout.Weights) []rollout.Verdict {
	g.mu.Lock()
	g.checks++
	g.mu.Unlock()
	now := g.clk.Now()
	var vs []rollout.Verdict
	for _, gate := range doc.Spec.Gates(w.Canary) {
		vs = append(vs, rollout.Verdict{Gate: gate, Result: g.result(now), Time: now, Reason: "fake"})
	}
	return vs
}

func mustParse(t testing.TB, yaml string) *rollout.Document {
	t.Helper()
	docs, err := rollout.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return docs[0]
}

// specYAML is the plan: steps 0→40→100 every ten minutes, 5m bake, two failures.
const specYAML = `apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata: {name: demo}
spec:
  virtualService: {namespace: default, name: grpc-vs}
  host: grpc-helloworld-py
  stable: v1
  canary: v2
  manifest: deploy/sample/rules.yaml
  steps: [0, 40, 100]
  schedule: "*/10 * * * *"
  analysis:
    interval: 30s
    bake: 5m
    failureLimit: 2
    metrics:
      - template: grpc-success-rate
        min: 0.99
`
