package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/store"
)

// historyRebuildLimit bounds how many events are rebuilt from Git into an empty store.
const historyRebuildLimit = 10000

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
	// specsHead is the commit the specs were last read at; only the Git watch's goroutine
	// (and serve before it starts) reads specs.
	specsHead string
	metrics   daemonMetrics
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
	docs := d.prepareAll(ctx, d.cat.replace(entries)) // a rollout that cannot start is Invalid, alone
	d.repo.Manage(docs...)
	d.ctrl.Set(docs)
	d.specsHead = head
	return nil
}

// prepare gives a rollout the store has never seen its state: rebuilt from the trailers of
// canaryd's commits in Git when there are any (an empty or lost store), else Idle at the
// weights Git holds.
func (d *daemon) prepare(ctx context.Context, doc *rollout.Document) error {
	if _, ok, err := d.db.State(doc.Name()); err != nil || ok {
		return err
	}
	evs, err := d.repo.History(ctx, doc, historyRebuildLimit)
	if err != nil {
		return fmt.Errorf("rebuild history from Git: %w", err)
	}
	if len(evs) == 0 {
		w, err := d.weightsAtHead(doc)
		if err != nil {
			return err
		}
		return d.db.Save(controller.NewState(doc.Name(), w))
	}
	st := stateFromHistory(doc, evs[0])
	oldestFirst := make([]rollout.Event, len(evs))
	for i, ev := range evs {
		oldestFirst[len(evs)-1-i] = ev
	}
	d.log.Info("history rebuilt from git", "rollout", doc.Name(), "events", len(evs), "phase", st.Phase, "weight", st.Weights.Canary)
	return d.db.Save(st, oldestFirst...)
}

func (d *daemon) weightsAtHead(doc *rollout.Document) (rollout.Weights, error) {
	files, _, err := d.repo.Files(doc.Spec.Manifest)
	if err != nil {
		return rollout.Weights{}, err
	}
	data, ok := files[doc.Spec.Manifest]
	if !ok {
		return rollout.Weights{}, fmt.Errorf("manifest %s is not in the repo", doc.Spec.Manifest)
	}
	return gitops.ReadWeights(data, gitops.RefOf(doc))
}

// stateFromHistory is the state the newest event rebuilt from Git implies.
func stateFromHistory(doc *rollout.Document, newest rollout.Event) rollout.State {
	st := rollout.State{Rollout: doc.Name(), Run: newest.Run, Step: newest.Step, Weights: newest.Weights,
		Commit: newest.Commit, StepSince: newest.Time, BakeSince: newest.Time, Updated: newest.Time,
		Message: "rebuilt from Git at " + shortSHA(newest.Commit)}
	switch newest.Kind {
	case rollout.EventSucceeded:
		st.Phase = rollout.Succeeded
	case rollout.EventRolledBack:
		st.Phase = rollout.RolledBack
	case rollout.EventAborted:
		st.Phase = rollout.Aborted
	default:
		st.Phase = rollout.Progressing
		if st.Step < 0 {
			st.Step = -1
		}
	}
	if st.Step >= len(doc.Spec.Steps) {
		st.Step = len(doc.Spec.Steps) - 1
	}
	return st
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// onSync feeds what a fetch found to the controller (Git wins) and reloads the specs.
func (d *daemon) onSync(ctx context.Context, changes []rollout.GitChange, err error) {
	if err != nil {
		d.log.Warn("git sync", "err", err)
		d.reconcileError()
		if len(changes) == 0 {
			return
		}
	}
	d.fetched.Store(true)
	for _, ch := range changes {
		if err := d.ctrl.Observe(ctx, ch); err != nil && !errors.Is(err, controller.ErrNotFound) && ctx.Err() == nil {
			d.log.Warn("observe git change", "rollout", ch.Rollout, "commit", ch.Commit, "err", err)
			d.reconcileError()
		}
	}
	if err := d.loadSpecs(ctx); err != nil {
		d.log.Warn("reload specs", "err", err)
		d.reconcileError()
	}
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
