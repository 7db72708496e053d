package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/canarydio/canaryd/rollout"
)

// historyRebuildLimit bounds how many events are rebuilt from Git into an empty store.
const historyRebuildLimit = 10000

// errUnreadable is load's error when Git cannot say what it holds for a rollout the store
// has never seen: the rollout waits (retrying with backoff) rather than start from a guess.
var errUnreadable = errors.New("git cannot say what it holds for the rollout")

// loadRetrying loads the state, retrying with backoff while Git cannot be read for a
// rollout the store has never seen: that rollout waits alone, the others go on. It counts as
// loaded after its first try, so that one unreadable rollout keeps no replica unready.
func (w *worker) loadRetrying(ctx context.Context) error {
	backoff := w.c.opts.RetryBackoff
	for {
		err := w.load(ctx)
		w.loaded.Store(true)
		if !errors.Is(err, errUnreadable) {
			return err
		}
		w.log.Warn("rollout waits for git", "err", err, "retry", backoff)
		t := w.c.opts.Clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		backoff = min(2*backoff, w.c.opts.MaxBackoff)
	}
}

// load gives the worker its state before it moves anything. A new leader re-derives before
// it moves: when the Repo can say what Git holds (an Observer) and the stored state does
// not account for it — an empty store, a store written before another replica moved the
// rollout, a history rewritten under it —, the state is rebuilt from Git (Recover) and the
// takeover recorded in history. A stored state that agrees with Git is kept as it is.
func (w *worker) load(ctx context.Context) error {
	st, ok, err := w.c.opts.Store.State(w.doc.Name())
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	obs, can := w.c.opts.Repo.(Observer)
	if !can {
		if !ok {
			st = NewState(w.doc.Name(), rollout.CanaryAt(0))
		}
		w.st = st
		return nil
	}
	ch, err := obs.Observe(w.doc)
	if err != nil {
		if !ok {
			return fmt.Errorf("%w: %w", errUnreadable, err)
		}
		w.log.Warn("read what git holds; going on from the stored state", "err", err)
		w.st = st
		return nil
	}
	if ok && Agrees(st, ch) {
		w.st = st
		return nil
	}
	return w.rebuild(ctx, st, ok, ch)
}

// rebuild replaces the worker's state with the one Git implies and records why; an empty
// store also gets the rollout's history back from canaryd's commits.
func (w *worker) rebuild(ctx context.Context, old rollout.State, had bool, ch rollout.GitChange) error {
	now := w.now()
	st := Recover(w.doc, ch, now)
	st.LastTick = old.LastTick
	var evs []rollout.Event
	if hr, can := w.c.opts.Repo.(HistoryReader); can && !had {
		got, err := hr.History(ctx, w.doc, historyRebuildLimit)
		if err != nil {
			w.log.Warn("rebuild history from git", "err", err)
		}
		for i := len(got) - 1; i >= 0; i-- {
			evs = append(evs, got[i])
		}
	}
	why := "the store had no state"
	if had {
		why = fmt.Sprintf("the store said %s at %s (commit %.12s), Git says otherwise", old.Phase, old.Weights, old.Own)
	}
	evs = append(evs, rollout.Event{Time: now, Rollout: st.Rollout, Kind: rollout.EventTakeover, Run: st.Run,
		Step: st.Step, Weights: st.Weights, Phase: st.Phase, Commit: st.Own, Actor: w.c.opts.Identity,
		Message: fmt.Sprintf("%s: state rebuilt from Git at %.12s (%s)", w.identity(), ch.LatestCommit(), why)})
	if err := w.c.opts.Store.Save(st, evs...); err != nil {
		return fmt.Errorf("save the state rebuilt from git: %w", err)
	}
	w.log.Info("state rebuilt from git", "phase", st.Phase, "run", st.Run, "step", st.Step,
		"weight", st.Weights.Canary, "commit", st.Own, "events", len(evs))
	w.st = st
	return nil
}

func (w *worker) identity() string {
	if id := w.c.opts.Identity; id != "" {
		return id
	}
	return "canaryd"
}
