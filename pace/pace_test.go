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
// forward requests wait for the bucket to refill above the reserve, told how long.
func TestLimiterKeepsTokensForRollbacks(t *testing.T) {
	l := New(10, 20)
	now := time.Now()
	forward := 0
	for l.take(now) == 0 {
		forward++
		if forward > 20 {
			t.Fatal("forward requests took more than the burst")
		}
	}
	if forward != 10 {
		t.Fatalf("forward requests took %d tokens of 20, want 10 (half kept)", forward)
	}
	if wait := l.take(now); wait < 90*time.Millisecond || wait > 110*time.Millisecond {
		t.Errorf("a forward request with the reserve left waits %v, want 100ms (one token at 10/s)", wait)
	}
	backward := 0
	for l.rate.AllowN(now, 1) { // what Wait does for a backward request, at now
		backward++
	}
	if backward != 10 {
		t.Errorf("backward requests found %d tokens, want the 10 kept", backward)
	}
	if wait := l.take(now); wait < time.Second || wait > 1100*time.Millisecond {
		t.Errorf("with the bucket empty a forward request waits %v, want 1.1s (11 tokens at 10/s)", wait)
	}
	if l.take(now.Add(1100*time.Millisecond)) != 0 {
		t.Error("a forward request still waits once the bucket refilled above the reserve")
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
