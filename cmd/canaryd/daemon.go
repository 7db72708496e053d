package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/store"
)

// daemon is canaryd serve's wiring: the catalog of specs read from Git, the store, the
// repo and the controller, and the glue between them.
type daemon struct {
	cfg     *Config
	log     *slog.Logger
	db      *store.DB
	repo    *gitops.Repo
	ctrl    *controller.Controller
	cat     catalog
	fetched atomic.Bool
	// fetchedAt is when a fetch last succeeded (Unix nanoseconds), fetchErr why the last
	// one failed: /readyz turns not-ready when Git has been unreachable too long.
	fetchedAt atomic.Int64
	fetchErr  atomic.Value // string
	// specsHead is the commit the specs were last read at; only the Git watch's goroutine
	// (and serve before it starts) reads specs.
	specsHead string
	specs     *specCache // the specs' parses at specsHead, by file
	metrics   daemonMetrics
	// leading is true while this replica holds the lease (always, without leader
	// election); leader is the lease holder's identity as last seen, self its own.
	leading      atomic.Bool
	leader, self atomic.Value // string
	// view is what a follower shows: each rollout's state derived from Git on every fetch
	// (Recover), never written to the store. Followers never write state.
	viewMu sync.Mutex
	view   map[string]rollout.State
	notify *eventNotifier // nil without receivers
	// invalidMu makes recordInvalid's read-then-append one step.
	invalidMu sync.Mutex
}

// daemonMetrics is what the daemon reports; nil-safe no-ops when metrics are off.
type daemonMetrics interface {
	ReconcileError()
}

// loadSpecs reads the specs at the head, marks invalid ones and hands the valid ones to
// the repo and the controller.
func (d *daemon) loadSpecs(ctx context.Context) error {
	files, head, err := d.repo.Files(d.cfg.Git.Rollouts)
	if err != nil {
		return fmt.Errorf("read specs %q at the head: %w", d.cfg.Git.Rollouts, err)
	}
	if head == d.specsHead {
		return nil // the head has not moved since the specs were last read
	}
	entries := d.parseSpecs(files)
	for _, e := range entries {
		if len(e.problems) > 0 {
			d.log.Warn("invalid spec", "rollout", e.name, "commit", head, "problems", e.problems.Error())
		}
	}
	docs := d.cat.replace(entries)
	d.gaugeInvalid()
	d.recordInvalid(head)
	d.repo.Manage(docs...)
	d.ctrl.Set(docs)
	d.specsHead = head
	d.publishRollouts()
	return nil
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// onSync hands what a fetch found to the controller while this replica leads (Git wins),
// or to the follower's read view, and reloads the specs. A report that the stored state
// already accounts for is news to nobody and is not sent.
func (d *daemon) onSync(ctx context.Context, changes []rollout.GitChange, err error) {
	if err != nil {
		d.log.Warn("git sync", "err", err)
		d.reconcileError()
		d.fetchErr.Store(err.Error())
		if len(changes) == 0 {
			return
		}
	} else {
		d.fetchedAt.Store(time.Now().UnixNano())
	}
	d.fetched.Store(true)
	if err := d.loadSpecs(ctx); err != nil {
		d.log.Warn("reload specs", "err", err)
		d.reconcileError()
	}
	if !d.leading.Load() {
		d.follow(changes)
		return
	}
	for _, ch := range changes {
		if st, ok, err := d.db.StateView(ch.Rollout); err == nil && ok && controller.Agrees(st, ch) {
			continue
		}
		if err := d.ctrl.Observe(ctx, ch); err != nil && !errors.Is(err, controller.ErrNotFound) && ctx.Err() == nil {
			d.log.Warn("observe git change", "rollout", ch.Rollout, "commit", ch.Commit, "err", err)
			d.reconcileError()
			d.rolloutError(ch.Rollout)
		}
	}
}

// follow updates the follower's read view from what Git says: a rollout's state is the
// one Git implies (Recover), derived again on every fetch (a post-promotion bake ends with
// time, not with a commit); while it still accounts for Git, the step keeps its start.
func (d *daemon) follow(changes []rollout.GitChange) {
	d.viewMu.Lock()
	defer d.viewMu.Unlock()
	if d.view == nil {
		d.view = map[string]rollout.State{}
	}
	now := time.Now()
	for _, ch := range changes {
		e, ok := d.cat.get(ch.Rollout)
		if !ok || e.doc == nil {
			continue
		}
		st := controller.Recover(e.doc, ch, now)
		st.Pending = nil // a follower moves nothing
		if prev, ok := d.view[ch.Rollout]; ok && controller.Agrees(prev, ch) && prev.Step == st.Step {
			st.StepSince, st.BakeSince = prev.StepSince, prev.BakeSince
		}
		d.view[ch.Rollout] = st
	}
}

// state is a rollout's state as this replica tells it, to read and not change: the
// store's while it leads, the read view derived from Git while it follows.
func (d *daemon) state(name string) (rollout.State, bool, error) {
	if d.leading.Load() {
		return d.db.StateView(name)
	}
	d.viewMu.Lock()
	defer d.viewMu.Unlock()
	st, ok := d.view[name]
	return st, ok, nil
}

// states is state for every entry of es, in one read of the store while this replica
// leads.
func (d *daemon) states(es []*entry) []store.Viewed {
	if d.leading.Load() {
		return d.db.StateViews(entryNames(es))
	}
	d.viewMu.Lock()
	defer d.viewMu.Unlock()
	out := make([]store.Viewed, len(es))
	for i, e := range es {
		out[i].State, out[i].Found = d.view[e.name]
	}
	return out
}

// leaderName is the lease holder as last seen, or "" when unknown.
func (d *daemon) leaderName() string {
	s, _ := d.leader.Load().(string)
	return s
}

func (d *daemon) reconcileError() {
	if d.metrics != nil {
		d.metrics.ReconcileError()
	}
}

// crashHook returns the controller hook the crash tests use: with CANARYD_TEST_KILL_AT set
// to "point" or "point:n" (intent, committed, applied, recorded), the process kills itself
// with SIGKILL the n-th time (default 1st) the step protocol reaches that point. It is nil
// otherwise: production never sets it.
func crashHook(log *slog.Logger) func(string, rollout.Move) {
	spec := os.Getenv("CANARYD_TEST_KILL_AT")
	if spec == "" {
		return nil
	}
	point, nth, _ := strings.Cut(spec, ":")
	n, err := strconv.Atoi(nth)
	if err != nil || n < 1 {
		n = 1
	}
	var seen atomic.Int64
	return func(p string, m rollout.Move) {
		if p == point && seen.Add(1) == int64(n) {
			log.Warn("test hook: killing the process", "point", p, "weight", m.Weights.Canary)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Hour) // SIGKILL is not deliverable late; never return
		}
	}
}

// observeAll is what Git says of every valid rollout at the head as last fetched.
func (d *daemon) observeAll() []rollout.GitChange {
	var out []rollout.GitChange
	for _, e := range d.cat.all() {
		if e.doc == nil {
			continue
		}
		ch, err := d.repo.Observe(e.doc)
		if err != nil {
			d.log.Warn("read what git holds", "rollout", e.name, "err", err)
			continue
		}
		out = append(out, ch)
	}
	return out
}

func (d *daemon) selfName() string {
	s, _ := d.self.Load().(string)
	return s
}

// gitUnreachable returns why Git counts as unreachable now, or "".
func (d *daemon) gitUnreachable() string {
	lastErr, _ := d.fetchErr.Load().(string)
	return gitUnreachable(time.Unix(0, d.fetchedAt.Load()), lastErr, time.Now(), d.cfg.Git.UnreachableAfter.Duration)
}

// gitUnreachable returns why Git counts as unreachable at now: no fetch has succeeded for
// longer than after. It returns "" while Git answers.
func gitUnreachable(lastOK time.Time, lastErr string, now time.Time, after time.Duration) string {
	if lastOK.IsZero() || now.Sub(lastOK) <= after {
		return ""
	}
	return fmt.Sprintf("git has been unreachable for %s (since %s): %s", now.Sub(lastOK).Round(time.Second),
		lastOK.UTC().Format(time.RFC3339), lastErr)
}
