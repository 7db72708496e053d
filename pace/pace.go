// Package pace is the client-side rate limit of canaryd's requests to the API server. It
// keeps half of its burst for rollbacks and aborts: requests made for a step forward take a
// token only while more than that reserve are left, so that a mass rollback right after a
// storm of steps finds the tokens it needs instead of waiting for the steps' debt to be
// repaid. A request is a rollback's when its context says so (Backward).
package pace

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

type backwardKey struct{}

// Backward marks the requests made with the returned context as a rollback's or an
// abort's: they may use the whole burst.
func Backward(ctx context.Context) context.Context {
	return context.WithValue(ctx, backwardKey{}, true)
}

func isBackward(ctx context.Context) bool {
	b, _ := ctx.Value(backwardKey{}).(bool)
	return b
}

// Limiter is a token bucket of qps tokens a second and a burst, one token a request, that
// keeps half the burst for backward requests. It is a flowcontrol.RateLimiter of
// client-go: set it as a rest.Config's RateLimiter, and every client made from that config
// shares it. It is safe for concurrent use.
type Limiter struct {
	rate    *rate.Limiter
	reserve float64
	mu      sync.Mutex // makes a forward request's look at the tokens and its take one
}

// New returns a limiter of qps requests a second (more than 0) with a burst of burst.
func New(qps float64, burst int) *Limiter {
	burst = max(burst, 1)
	return &Limiter{rate: rate.NewLimiter(rate.Limit(qps), burst), reserve: float64(burst / 2)}
}

// Wait returns once the request made with ctx may go, or when ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	if isBackward(ctx) {
		return l.rate.Wait(ctx)
	}
	for {
		wait := l.take(time.Now())
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

// take takes a token for a forward request at now when more than the reserve are left,
// and returns 0; otherwise it takes none and returns how long until there would be.
func (l *Limiter) take(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	tokens := l.rate.TokensAt(now)
	if tokens >= l.reserve+1 && l.rate.AllowN(now, 1) {
		return 0
	}
	return max(time.Millisecond, time.Duration((l.reserve+1-tokens)/float64(l.rate.Limit())*float64(time.Second)))
}

// TryAccept takes a token for a forward request if one may go now.
func (l *Limiter) TryAccept() bool { return l.take(time.Now()) == 0 }

// Accept waits for a token for a forward request.
func (l *Limiter) Accept() { _ = l.Wait(context.Background()) }

// QPS is the limiter's rate.
func (l *Limiter) QPS() float32 { return float32(l.rate.Limit()) }

// Stop does nothing: the limiter holds no goroutine.
func (l *Limiter) Stop() {}
