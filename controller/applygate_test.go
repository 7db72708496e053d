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
