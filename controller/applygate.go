package controller

import (
	"context"
	"sync"
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
}

func newApplyGate(n int) *applyGate { return &applyGate{free: n} }

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
