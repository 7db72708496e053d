package pace

import (
	"context"
	"testing"
	"time"

	"k8s.io/client-go/util/flowcontrol"
)

var _ flowcontrol.RateLimiter = (*Limiter)(nil)

// TestLimiterKeepsTokensForRollbacks: at 10 requests a second with a burst of 20, forward
// requests stop taking tokens with 10 left; those 10 are a mass rollback's at once, and
// forward requests go again as the buckets refill, at the rate.
func TestLimiterKeepsTokensForRollbacks(t *testing.T) {
	l := New(10, 20)
	now := time.Now()
	forward := 0
	for l.allow(now, false) {
		forward++
		if forward > 20 {
			t.Fatal("forward requests took more than the burst")
		}
	}
	if forward != 10 {
		t.Fatalf("forward requests took %d tokens of 20, want 10 (half kept)", forward)
	}
	backward := 0
	for l.allow(now, true) {
		backward++
	}
	if backward != 10 {
		t.Errorf("backward requests found %d tokens, want the 10 kept", backward)
	}
	if l.allow(now.Add(50*time.Millisecond), false) {
		t.Error("a forward request went before a token was due")
	}
	if !l.allow(now.Add(100*time.Millisecond), false) {
		t.Error("a forward request waits with a token due (one every 100ms)")
	}
	if l.allow(now.Add(150*time.Millisecond), true) {
		t.Error("a backward request found a token the forward one took")
	}
}

// TestWaitTellsBackwardFromForward drains the forward share of a real limiter with Wait:
// a forward request then waits until its context ends, while a backward one goes at once.
func TestWaitTellsBackwardFromForward(t *testing.T) {
	l := New(0.001, 4) // a token every 1000 s: nothing refills during the test
	ctx := context.Background()
	for range 2 {
		if err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(short); err == nil {
		t.Fatal("a forward request took a token of the reserve")
	}
	for i := range 2 {
		if err := l.Wait(Backward(ctx)); err != nil {
			t.Fatalf("backward request %d: %v", i, err)
		}
	}
	if l.TryAccept() {
		t.Error("TryAccept with the bucket empty")
	}
}
