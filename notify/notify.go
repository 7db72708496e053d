// Package notify tells people what canaryd did: each notable event of a rollout (a step,
// a rollback, an abort, an override, a pause, success, an invalid spec) is posted to the
// configured receivers: a generic JSON webhook, a Slack incoming webhook or a Microsoft
// Teams workflow webhook. Delivery is asynchronous: Notify never blocks, each receiver has
// its own bounded queue and worker, and a receiver that hangs or fails delays nothing but
// its own later messages. Each delivery's outcome is counted in a metric and logged.
package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canarydio/canaryd/rollout"
)

// Kinds of receiver.
const (
	KindWebhook = "webhook"
	KindSlack   = "slack"
	KindTeams   = "teams"
)

// Kinds lists the kinds of receiver.
var Kinds = []string{KindWebhook, KindSlack, KindTeams}

// DefaultEvents are the event kinds a receiver gets when it names none.
var DefaultEvents = []rollout.EventKind{rollout.EventStep, rollout.EventRolledBack, rollout.EventAborted,
	rollout.EventOverridden, rollout.EventPaused, rollout.EventSucceeded, rollout.EventInvalid}

// Defaults where a Receiver or Options is silent.
const (
	DefaultQueue    = 100
	DefaultTimeout  = 5 * time.Second
	DefaultAttempts = 3
	DefaultBackoff  = time.Second
)

// Receiver is one place notifications go.
type Receiver struct {
	// Name identifies the receiver in logs and metrics (never its URL, which is a secret
	// for Slack and Teams).
	Name string
	// Kind is KindWebhook, KindSlack or KindTeams.
	Kind string
	// URL is where messages are POSTed.
	URL string
	// Events are the event kinds sent; empty means DefaultEvents.
	Events []rollout.EventKind
	// Rollouts limits the receiver to these rollouts; empty means all.
	Rollouts []string
	// Timeout bounds each attempt (default DefaultTimeout).
	Timeout time.Duration
}

// Options configures a Notifier.
type Options struct {
	Receivers []Receiver
	// Queue is how many messages may wait per receiver (default DefaultQueue); beyond it
	// new messages are dropped and counted.
	Queue int
	// Attempts is how often a message is tried before it counts as failed (default
	// DefaultAttempts); Backoff is the wait before the second attempt, doubling after.
	Attempts int
	Backoff  time.Duration
	// Client sends the requests; nil means a client without redirects.
	Client *http.Client
	// Registerer receives canaryd_notifications_total; nil means none.
	Registerer prometheus.Registerer
	// Logger receives one line per failed or dropped delivery; nil discards.
	Logger *slog.Logger
	// OnResult, when set, is told the outcome of each delivery of m to a receiver:
	// ResultSent, ResultFailed (err says why, never with the URL) or ResultDropped. It is
	// called from the receiver's worker (from Notify for a drop) and must not block long.
	OnResult func(receiver string, m Message, result string, err error)
}

// The outcomes of a delivery, as OnResult and canaryd_notifications_total name them.
const (
	ResultSent    = "sent"
	ResultFailed  = "failed"
	ResultDropped = "dropped"
)

// Notifier delivers notifications. Its methods are safe for concurrent use; a nil
// *Notifier does nothing.
type Notifier struct {
	opts    Options
	queues  []*queue
	results *prometheus.CounterVec
	log     *slog.Logger

	mu      sync.Mutex
	invalid map[string]string // rollout -> the problems last notified
}

// queue is one receiver's pending messages and its worker's state.
type queue struct {
	r  Receiver
	ch chan Message
}

// New checks opts and returns a Notifier; Run delivers what Notify queues.
func New(opts Options) (*Notifier, error) {
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	n := &Notifier{opts: opts, log: opts.Logger, invalid: map[string]string{}}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	for i, r := range opts.Receivers {
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("notify receiver %d (%s): %w", i, r.Name, err)
		}
		if r.Timeout <= 0 {
			r.Timeout = DefaultTimeout
		}
		if len(r.Events) == 0 {
			r.Events = DefaultEvents
		}
		n.queues = append(n.queues, &queue{r: r, ch: make(chan Message, opts.Queue)})
	}
	n.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canaryd_notifications_total",
		Help: "Notifications by receiver and result: sent, failed (after every attempt), dropped (queue full).",
	}, []string{"receiver", "result"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(n.results); err != nil {
			return nil, fmt.Errorf("register notify metrics: %w", err)
		}
	}
	return n, nil
}

func (r Receiver) check() error {
	switch {
	case r.Name == "":
		return errors.New("name is required")
	case !slices.Contains(Kinds, r.Kind):
		return fmt.Errorf("kind %q: want one of %v", r.Kind, Kinds)
	case r.URL == "":
		return errors.New("url is required")
	}
	return nil
}

// wants reports whether the receiver takes m.
func (r Receiver) wants(m Message) bool {
	return slices.Contains(r.Events, m.Event) && (len(r.Rollouts) == 0 || slices.Contains(r.Rollouts, m.Rollout))
}

// Notify queues a message for every receiver that wants it. It never blocks: a receiver
// whose queue is full drops the message (counted as dropped).
func (n *Notifier) Notify(m Message) {
	if n == nil {
		return
	}
	for _, q := range n.queues {
		if !q.r.wants(m) {
			continue
		}
		select {
		case q.ch <- m:
		default:
			n.results.WithLabelValues(q.r.Name, ResultDropped).Inc()
			n.log.Warn("notification dropped: queue full", "receiver", q.r.Name, "rollout", m.Rollout, "event", m.Event)
			n.outcome(q.r.Name, m, ResultDropped, nil)
		}
	}
}

// Run delivers queued messages until ctx ends, one worker per receiver. It returns nil
// when ctx ends; messages still queued then are not sent.
func (n *Notifier) Run(ctx context.Context) error {
	if n == nil {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	for _, q := range n.queues {
		wg.Go(func() { n.work(ctx, q) })
	}
	wg.Wait()
	return nil
}

func (n *Notifier) work(ctx context.Context, q *queue) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-q.ch:
			if err := n.deliver(ctx, q.r, m); err != nil {
				if ctx.Err() != nil {
					return
				}
				n.results.WithLabelValues(q.r.Name, ResultFailed).Inc()
				n.log.Warn("notification failed", "receiver", q.r.Name, "rollout", m.Rollout, "event", m.Event, "err", err)
				n.outcome(q.r.Name, m, ResultFailed, err)
				continue
			}
			n.results.WithLabelValues(q.r.Name, ResultSent).Inc()
			n.outcome(q.r.Name, m, ResultSent, nil)
		}
	}
}

func (n *Notifier) outcome(receiver string, m Message, result string, err error) {
	if n.opts.OnResult != nil {
		n.opts.OnResult(receiver, m, result, err)
	}
}

// deliver tries m up to Attempts times, waiting Backoff (doubling) between attempts. Only
// network errors, 429 and 5xx are retried.
func (n *Notifier) deliver(ctx context.Context, r Receiver, m Message) error {
	body, err := render(r.Kind, m)
	if err != nil {
		return err
	}
	wait := n.opts.Backoff
	for attempt := 1; ; attempt++ {
		retry, err := n.post(ctx, r, body)
		if err == nil {
			return nil
		}
		if !retry || attempt >= n.opts.Attempts {
			return fmt.Errorf("attempt %d of %d: %w", attempt, n.opts.Attempts, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait *= 2
	}
}

// post sends one attempt. Its errors never contain the URL (a secret for Slack and Teams).
func (n *Notifier) post(ctx context.Context, r Receiver, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytesReader(body))
	if err != nil {
		return false, errors.New("bad receiver url")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "canaryd-notify")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return true, fmt.Errorf("no answer within %s", r.Timeout)
		}
		return true, errors.New("the receiver cannot be reached")
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5:
		return true, fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return false, fmt.Errorf("the receiver refused: %s", resp.Status)
}

// Invalid notifies that a rollout's spec does not validate, once per distinct set of
// problems (a re-read of the same broken spec is not news).
func (n *Notifier) Invalid(name, commit string, problems string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	seen := n.invalid[name] == problems
	n.invalid[name] = problems
	n.mu.Unlock()
	if seen {
		return
	}
	n.Notify(Message{Rollout: name, Event: rollout.EventInvalid, Phase: rollout.Invalid, Commit: commit,
		Message: "the spec does not validate: " + problems, Time: time.Now().UTC()})
}

// Valid forgets a rollout's notified problems, so that breaking it again is news.
func (n *Notifier) Valid(name string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	delete(n.invalid, name)
	n.mu.Unlock()
}
