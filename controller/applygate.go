package controller

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxApplies bounds the writes to the cluster in flight at once, across rollouts.
const DefaultMaxApplies = 16

// applyGate bounds the writes to the cluster in flight across every rollout, and lets a
// backward move (a rollback, an abort) pass before any step forward that waits: in a mass
// rollback behind the API server's rate limit, canaries go to 0 first.
type applyGate struct {
	mu             sync.Mutex
	free           int
	urgent, normal []chan struct{} // waiters, first come first served within each
	queued         chan struct{}   // tests: told of each waiter that queues (nil: nobody)

	// The rate of writes (nil: none): steps forward leave reserve tokens of the burst to
	// backward moves.
	rate    *rate.Limiter
	reserve float64
	paceMu  sync.Mutex // makes a step forward's look at the tokens and its take one
}

func newApplyGate(n int) *applyGate { return &applyGate{free: n} }

// limit paces the writes to qps a second with a burst of burst (qps <= 0: no pacing), as
// the API server's client does, and keeps half the burst for backward moves: steps
// forward take a token only while more than that remain, so that a mass rollback right
// after a storm of steps finds the tokens it needs instead of waiting for the steps' debt
// to be repaid.
func (g *applyGate) limit(qps float64, burst int) {
	if qps <= 0 {
		return
	}
	burst = max(burst, 1)
	g.rate = rate.NewLimiter(rate.Limit(qps), burst)
	g.reserve = float64(burst / 2)
}

// pace waits until the write may go: a backward move as soon as a token is there, a step
// forward once more than the reserve are.
func (g *applyGate) pace(ctx context.Context, backward bool) error {
	if g.rate == nil {
		return nil
	}
	if backward {
		return g.rate.Wait(ctx)
	}
	for {
		wait := g.take(time.Now())
		if wait == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// take takes a token for a step forward at now when more than the reserve are left, and
// returns 0; otherwise it takes none and returns how long until there would be.
func (g *applyGate) take(now time.Time) time.Duration {
	g.paceMu.Lock()
	defer g.paceMu.Unlock()
	tokens := g.rate.TokensAt(now)
	if tokens >= g.reserve+1 && g.rate.AllowN(now, 1) {
		return 0
	}
	return max(time.Millisecond, time.Duration((g.reserve+1-tokens)/float64(g.rate.Limit())*float64(time.Second)))
}

// acquire waits for a slot, or for ctx; urgent waiters are served before the others.
func (g *applyGate) acquire(ctx context.Context, urgent bool) error {
	g.mu.Lock()
	if g.free > 0 && len(g.urgent) == 0 && (urgent || len(g.normal) == 0) {
		g.free--
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if urgent {
		g.urgent = append(g.urgent, ch)
	} else {
		g.normal = append(g.normal, ch)
	}
	q := g.queued
	g.mu.Unlock()
	if q != nil {
		q <- struct{}{}
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-ch: // granted while giving up: hand the slot on
		g.releaseLocked()
	default:
		g.urgent = drop(g.urgent, ch)
		g.normal = drop(g.normal, ch)
	}
	return ctx.Err()
}

// release gives a slot back, to the first urgent waiter if there is one.
func (g *applyGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseLocked()
}

func (g *applyGate) releaseLocked() {
	switch {
	case len(g.urgent) > 0:
		close(g.urgent[0])
		g.urgent = g.urgent[1:]
	case len(g.normal) > 0:
		close(g.normal[0])
		g.normal = g.normal[1:]
	default:
		g.free++
	}
}

func drop(q []chan struct{}, ch chan struct{}) []chan struct{} {
	for i, c := range q {
		if c == ch {
			return append(q[:i], q[i+1:]...)
		}
	}
	return q
}
