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
//
// Every request takes a token of all; a forward request first takes one of forward, a
// bucket of the same rate whose burst is the part not kept. A storm of steps empties
// forward while all, drawn down as much, still holds the kept part; a rollback finds it.
// Both wait by reservation (each waiter sleeps until its token is due), as client-go's own
// limiter does, so that a thousand waiting requests cost no CPU.
type Limiter struct {
	all, forward *rate.Limiter
	mu           sync.Mutex // TryAccept's look at both buckets and its take
}

// New returns a limiter of qps requests a second (more than 0) with a burst of burst.
func New(qps float64, burst int) *Limiter {
	burst = max(burst, 1)
	return &Limiter{all: rate.NewLimiter(rate.Limit(qps), burst), forward: rate.NewLimiter(rate.Limit(qps), max(1, burst-burst/2))}
}

// Wait returns once the request made with ctx may go, or when ctx ends (at once when its
// deadline comes before the token would).
func (l *Limiter) Wait(ctx context.Context) error {
	if !isBackward(ctx) {
		if err := l.forward.Wait(ctx); err != nil {
			return err
		}
	}
	return l.all.Wait(ctx)
}

// allow takes a token at now for a request if one may go now, and reports whether it did.
func (l *Limiter) allow(now time.Time, backward bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if backward {
		return l.all.AllowN(now, 1)
	}
	if l.forward.TokensAt(now) < 1 || l.all.TokensAt(now) < 1 {
		return false
	}
	l.forward.AllowN(now, 1)
	return l.all.AllowN(now, 1)
}

// TryAccept takes a token for a forward request if one may go now.
func (l *Limiter) TryAccept() bool { return l.allow(time.Now(), false) }

// Accept waits for a token for a forward request.
func (l *Limiter) Accept() { _ = l.Wait(context.Background()) }

// QPS is the limiter's rate.
func (l *Limiter) QPS() float32 { return float32(l.all.Limit()) }

// Stop does nothing: the limiter holds no goroutine.
func (l *Limiter) Stop() {}
