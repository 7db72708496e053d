package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
	"github.com/canarydio/canaryd/store"
)

// source is the server's view of the daemon: specs from the catalog, state and history
// from the store, actions through the controller.
type source struct{ d *daemon }

var _ server.Source = source{}

func (s source) view(e *entry, st rollout.State, ok bool) server.Rollout {
	r := server.Rollout{Name: e.name, Phase: rollout.Idle, Weights: rollout.CanaryAt(0)}
	if ok {
		r.Phase, r.Run, r.Weights, r.LastVerdict, r.Commit, r.Message, r.Updated =
			st.Phase, st.Run, st.Weights, st.LastVerdict, st.Commit, st.Message, st.Updated
		r.Step, r.Stuck = st.Step+1, st.Stuck
	}
	if doc := e.doc; doc != nil {
		r.Steps, r.Stable, r.Canary = len(doc.Spec.Steps), doc.Spec.Stable, doc.Spec.Canary
		if r.Phase == rollout.Progressing || r.Phase == rollout.Idle {
			r.NextTick = e.sched.Next(time.Now())
		}
	}
	r.Git = s.d.gitUnreachable()
	if e.onLastValid() {
		r.Problems = e.problems
		r.Message = invalidatedStatus(e.problems, r.Message)
	} else if len(e.problems) > 0 {
		r.Phase, r.Problems = rollout.Invalid, e.problems
		r.Message = fmt.Sprintf("the spec does not validate (%d problems); fix it in Git", len(e.problems))
	}
	return r
}

func (s source) Rollouts(ctx context.Context) ([]server.Rollout, error) {
	es := s.d.cat.all()
	vs := s.d.states(es)
	out := make([]server.Rollout, len(es))
	for i, e := range es {
		if vs[i].Err != nil {
			return nil, vs[i].Err
		}
		out[i] = s.view(e, vs[i].State, vs[i].Found)
	}
	return out, nil
}

func (s source) Rollout(ctx context.Context, name string) (server.Rollout, error) {
	e, ok := s.d.cat.get(name)
	if !ok {
		return server.Rollout{}, server.ErrNotFound
	}
	st, ok, err := s.d.state(name)
	if err != nil {
		return server.Rollout{}, err
	}
	return s.view(e, st, ok), nil
}

func (s source) History(ctx context.Context, name string, before uint64, limit int) ([]rollout.Event, error) {
	e, ok := s.d.cat.get(name)
	if !ok {
		return nil, server.ErrNotFound
	}
	if !s.d.leading.Load() && e.doc != nil {
		// A follower's store is not written: history comes from canaryd's commits in Git.
		evs, err := s.d.repo.History(ctx, e.doc, historyLimit(before, limit))
		if err != nil {
			return nil, err
		}
		return pageEvents(evs, before, limit), nil
	}
	return s.d.db.History(name, before, limit)
}

// historyLimit is how many events a follower reads from Git for one page.
func historyLimit(before uint64, limit int) int {
	if before > 0 {
		return 0 // all the commits History walks; the page is cut below
	}
	return limit
}

// pageEvents numbers events read from Git (newest first) oldest = 1, as the store does, and
// returns up to limit of them with Seq below before (0: from the newest).
func pageEvents(evs []rollout.Event, before uint64, limit int) []rollout.Event {
	n := uint64(len(evs))
	out := make([]rollout.Event, 0, min(len(evs), max(limit, 0)))
	for i := range evs {
		ev := evs[i]
		ev.Seq = n - uint64(i)
		if before > 0 && ev.Seq >= before {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		out = append(out, ev)
	}
	return out
}

func (s source) Act(ctx context.Context, name, action, actor, reason string) error {
	full := action == server.PromoteFull
	if full {
		action = string(controller.Promote)
	}
	a, err := controller.ParseAction(action)
	if err != nil {
		return fmt.Errorf("%w: %v", server.ErrRefused, err)
	}
	if !s.d.leading.Load() {
		leader := s.d.leaderName()
		if leader == "" {
			leader = "unknown (an election is under way)"
		}
		return fmt.Errorf("%w: this replica (%s) follows; send %s to the leader, %s", server.ErrNotLeader,
			s.d.selfName(), action, leader)
	}
	err = s.d.ctrl.Act(ctx, name, controller.Operator{Action: a, Actor: actor, Reason: reason, Full: full})
	switch {
	case errors.Is(err, controller.ErrNotFound):
		e, ok := s.d.cat.get(name)
		switch {
		case ok && len(e.problems) > 0:
			return fmt.Errorf("%s %q: the spec is invalid: %w", action, name, server.ErrRefused)
		case ok:
			return fmt.Errorf("%s %q: the rollout is starting; try again in a moment: %w", action, name, server.ErrUnavailable)
		}
		return server.ErrNotFound
	case errors.Is(err, controller.ErrIllegal):
		return fmt.Errorf("%w: %v", server.ErrRefused, err)
	}
	return err
}

func (s source) Ready(ctx context.Context) error {
	if !s.d.fetched.Load() {
		return errors.New("the Git repository has not been fetched yet")
	}
	if why := s.d.gitUnreachable(); why != "" {
		return errors.New(why)
	}
	if s.d.leading.Load() && !s.d.ctrl.Loaded() {
		return errors.New("the rollouts' state is being loaded from Git")
	}
	return nil
}

// observedStore is the store as the controller uses it, updating the rollout gauges on
// every save.
type observedStore struct {
	*store.DB
	d *daemon
	m *server.Metrics
}

func (o observedStore) Save(st rollout.State, evs ...rollout.Event) error {
	if err := o.DB.Save(st, evs...); err != nil {
		o.m.RolloutError(st.Rollout)
		return err
	}
	if e, ok := o.d.cat.get(st.Rollout); ok {
		o.m.SetRollout(source{o.d}.view(e, st, true))
	}
	o.m.ObserveEvents(evs)
	o.d.notify.saved(evs)
	return nil
}

// timedRepo measures each push, and reads the head for the controller.
type timedRepo struct {
	controller.Repo
	m *server.Metrics
	d *daemon
}

var (
	_ controller.Observer      = timedRepo{}
	_ controller.HistoryReader = timedRepo{}
)

func (t timedRepo) Observe(doc *rollout.Document) (rollout.GitChange, error) {
	return t.d.repo.Observe(doc)
}

func (t timedRepo) History(ctx context.Context, doc *rollout.Document, limit int) ([]rollout.Event, error) {
	return t.d.repo.History(ctx, doc, limit)
}

func (t timedRepo) SetWeights(ctx context.Context, doc *rollout.Document, c rollout.Commit) (string, error) {
	start := time.Now()
	sha, err := t.Repo.SetWeights(ctx, doc, c)
	if err == nil {
		t.m.ObservePush(time.Since(start), 0)
	} else if ctx.Err() == nil {
		t.m.PushFailed()
		t.m.RolloutError(doc.Name())
	}
	return sha, err
}

// countedGates counts each check by gate and result.
type countedGates struct {
	controller.Gates
	m *server.Metrics
}

func (g countedGates) Check(ctx context.Context, doc *rollout.Document, w rollout.Weights) []rollout.Verdict {
	vs := g.Gates.Check(ctx, doc, w)
	g.m.ObserveVerdicts(doc.Name(), vs)
	return vs
}

// CheckStep is Check for the step key names, so that the vs-stable gates count per run
// and step.
func (g countedGates) CheckStep(ctx context.Context, doc *rollout.Document, key rollout.StepKey, w rollout.Weights) []rollout.Verdict {
	var vs []rollout.Verdict
	if sg, ok := g.Gates.(controller.StepGates); ok {
		vs = sg.CheckStep(ctx, doc, key, w)
	} else {
		vs = g.Gates.Check(ctx, doc, w)
	}
	g.m.ObserveVerdicts(doc.Name(), vs)
	return vs
}
