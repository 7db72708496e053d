package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/canarydio/canaryd/rollout"
)

// ErrNotFound is returned for an action on a rollout the controller does not run.
var ErrNotFound = errors.New("no such rollout")

// Options configures a Controller. Store and Repo are required; Router nil means gitops
// mode; Gates nil makes every gate an Error verdict; Clock nil means the system clock.
type Options struct {
	Store  Store
	Repo   Repo
	Router Router
	Gates  Gates
	// Converger, in gitops mode, delays a forward step's result (and so its bake) until the
	// cluster carries its weights, for at most ConvergeTimeout (default 5m).
	Converger       Converger
	ConvergeTimeout time.Duration
	Clock           Clock
	Logger          *slog.Logger
	// Identity names this replica in the history events it writes when it takes over a
	// rollout (the lease identity, e.g. the pod's name).
	Identity string
	// RetryBackoff is how long a failed move waits before it is tried again (default 2s);
	// it doubles up to MaxBackoff (default 1m).
	RetryBackoff, MaxBackoff time.Duration
	// MaxApplies bounds the writes to the cluster in flight at once, across rollouts
	// (default DefaultMaxApplies); rollbacks and aborts wait ahead of steps forward.
	MaxApplies int
	// Hook, when set, is called at each point of the step protocol ("intent", "committed",
	// "applied", "recorded"). Tests use it to kill the process at a chosen point.
	Hook func(point string, m rollout.Move)
}

// Controller runs many rollouts at once, one worker goroutine each, all owned by Run.
// Its methods are safe for concurrent use.
type Controller struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	docs    map[string]*rollout.Document // the desired set, applied by Run
	workers map[string]*worker
	// queued holds what Git said about rollouts whose worker has not started yet.
	queued  map[string][]Input
	changed chan struct{}
	applies *applyGate
}

// New returns a controller; call Set to give it rollouts and Run to run them.
func New(opts Options) *Controller {
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 2 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.MaxApplies <= 0 {
		opts.MaxApplies = DefaultMaxApplies
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Controller{opts: opts, log: log, docs: map[string]*rollout.Document{},
		workers: map[string]*worker{}, queued: map[string][]Input{}, changed: make(chan struct{}, 1),
		applies: newApplyGate(opts.MaxApplies)}
}

// Set replaces the set of rollouts to run. Rollouts that are new start; ones no longer in
// docs stop (their state stays in the store); ones whose spec changed continue on the new
// spec. Every document must be valid.
func (c *Controller) Set(docs []*rollout.Document) {
	m := make(map[string]*rollout.Document, len(docs))
	for _, d := range docs {
		m[d.Name()] = d
	}
	c.mu.Lock()
	c.docs = m
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Loaded reports whether every rollout given to Set has a worker that has loaded its state
// (rebuilt from Git where the store did not account for it): until then the store may not
// yet say what Git says, and actions on a rollout still starting answer ErrNotFound.
func (c *Controller) Loaded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.docs {
		if w, ok := c.workers[name]; !ok || !w.loaded.Load() {
			return false
		}
	}
	return true
}

// Names returns the names of the rollouts being run, sorted.
func (c *Controller) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.workers))
	for n := range c.workers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Run runs the rollouts until ctx is done or a worker fails (the store cannot be written);
// it waits for every worker before it returns.
func (c *Controller) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	defer func() {
		c.mu.Lock()
		c.workers = map[string]*worker{}
		c.mu.Unlock()
	}()
	c.reconcile(ctx, g)
	for {
		select {
		case <-ctx.Done():
			c.stopAll()
			err := g.Wait()
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return err
		case <-c.changed:
			c.reconcile(ctx, g)
		}
	}
}

func (c *Controller) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.workers {
		w.cancel()
	}
}

// reconcile starts, updates and stops workers to match the desired set.
func (c *Controller) reconcile(ctx context.Context, g *errgroup.Group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, w := range c.workers {
		if _, ok := c.docs[name]; !ok {
			w.cancel()
			delete(c.workers, name)
		}
	}
	for name, doc := range c.docs {
		if w, ok := c.workers[name]; ok {
			w.setDoc(doc)
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := newWorker(c, doc, cancel)
		c.workers[name] = w
		g.Go(func() error {
			defer cancel()
			err := w.run(wctx)
			if err != nil && wctx.Err() == nil {
				return fmt.Errorf("rollout %q: %w", name, err)
			}
			return nil
		})
	}
}

func (c *Controller) worker(name string) (*worker, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.workers[name]
	if !ok {
		return nil, fmt.Errorf("rollout %q: %w", name, ErrNotFound)
	}
	return w, nil
}

// Act carries out an operator action and returns once it is recorded (the move it asks for,
// if any, follows). It never waits behind a move or a check of the rollout: the worker
// decides beside them. It returns ErrNotFound or an error wrapping ErrIllegal.
func (c *Controller) Act(ctx context.Context, name string, op Operator) error {
	w, err := c.worker(name)
	if err != nil {
		return err
	}
	req := request{in: op, done: make(chan error, 1)}
	w.mail.putOp(req)
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-w.stopped:
		return fmt.Errorf("rollout %q: stopped", name)
	}
}

// Observe tells the controller what Git now says about a rollout (from a fetch or a webhook).
// It never waits for the rollout's worker: the newest word per rollout is kept until the
// worker reads it. What it says about a rollout that is about to start is kept for it.
func (c *Controller) Observe(_ context.Context, ch rollout.GitChange) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if w, ok := c.workers[ch.Rollout]; ok {
		w.mail.putGit(ch)
		return nil
	}
	if _, wanted := c.docs[ch.Rollout]; wanted {
		c.queued[ch.Rollout] = append(c.queued[ch.Rollout], Git{Change: ch})
		return nil
	}
	return fmt.Errorf("rollout %q: %w", ch.Rollout, ErrNotFound)
}

// takeQueued returns and forgets the inputs kept for a rollout's new worker.
func (c *Controller) takeQueued(name string) []Input {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queued[name]
	delete(c.queued, name)
	return q
}
