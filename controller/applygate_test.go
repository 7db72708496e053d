package controller

import (
	"context"
	"testing"
	"time"
)

// TestApplyGateServesRollbacksFirst: with every slot taken, a rollback that queues after
// steps forward is let through before them; a waiter that gives up loses its place and
// takes no slot.
func TestApplyGateServesRollbacksFirst(t *testing.T) {
	g := newApplyGate(1)
	ctx := context.Background()
	if err := g.acquire(ctx, false); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 3)
	g.queued = make(chan struct{}, 8)  // never blocks a waiter: 5 queue in this test
	queued := func(int) { <-g.queued } // the waiter just started is in the queue
	gaveUp, giveUp := context.WithCancel(ctx)
	gone := make(chan error, 1)
	go func() { gone <- g.acquire(gaveUp, false) }()
	queued(1)
	for i, name := range []string{"forward-1", "forward-2"} {
		go func() {
			if g.acquire(ctx, false) == nil {
				order <- name
				g.release()
			}
		}()
		queued(i + 2)
	}
	go func() {
		if g.acquire(ctx, true) == nil {
			order <- "rollback"
			g.release()
		}
	}()
	queued(4)
	giveUp()
	if err := <-gone; err == nil {
		t.Fatal("a waiter whose context ended got a slot")
	}
	g.release()
	var got []string
	for range 3 {
		got = append(got, <-order)
	}
	if want := []string{"rollback", "forward-1", "forward-2"}; !equal(got, want) {
		t.Errorf("served %v, want %v", got, want)
	}
	// Every slot comes back: one acquire succeeds at once, a second waits.
	if err := g.acquire(ctx, false); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := g.acquire(short, true); err == nil {
		t.Error("a second slot after every release, want one")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestApplyGateKeepsTokensForRollbacks: at 10 writes a second with a burst of 20, steps
// forward stop taking tokens with 10 left; those 10 are a mass rollback's at once, and
// steps forward wait for the bucket to refill above the reserve, told how long.
func TestApplyGateKeepsTokensForRollbacks(t *testing.T) {
	g := newApplyGate(16)
	g.limit(10, 20)
	now := time.Now()
	forward := 0
	for g.take(now) == 0 {
		forward++
		if forward > 20 {
			t.Fatal("steps forward took more than the burst")
		}
	}
	if forward != 10 {
		t.Fatalf("steps forward took %d tokens of 20, want 10 (half kept)", forward)
	}
	if wait := g.take(now); wait < 90*time.Millisecond || wait > 110*time.Millisecond {
		t.Errorf("a step forward with the reserve left waits %v, want 100ms (one token at 10/s)", wait)
	}
	backward := 0
	for g.rate.AllowN(now, 1) { // what pace does for a backward move, at now
		backward++
	}
	if backward != 10 {
		t.Errorf("backward moves found %d tokens, want the 10 kept", backward)
	}
	if wait := g.take(now); wait < time.Second || wait > 1100*time.Millisecond {
		t.Errorf("with the bucket empty a step forward waits %v, want 1.1s (11 tokens at 10/s)", wait)
	}
	if g.take(now.Add(1100*time.Millisecond)) != 0 {
		t.Error("a step forward still waits once the bucket refilled above the reserve")
	}

	off := newApplyGate(16)
	off.limit(0, 0)
	if err := off.pace(context.Background(), false); err != nil || off.rate != nil {
		t.Errorf("no limit: pace = %v, limiter %v", err, off.rate)
	}
}
