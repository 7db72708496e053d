package controller

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

func at(hhmm string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", "2026-11-27 "+hhmm)
	if err != nil {
		panic(err)
	}
	return t
}

// harness runs one Controller over fakes on a fake clock inside a synctest bubble.
type harness struct {
	t      *testing.T
	clk    *fakeClock
	store  *memStore
	repo   *fakeRepo
	router *fakeRouter
	gates  *fakeGates
	doc    *rollout.Document
	ctrl   *Controller
	stop   func()
}

func newHarness(t *testing.T, start time.Time, result func(time.Time) rollout.Result) *harness {
	h := &harness{t: t, clk: newFakeClock(start), store: newMemStore(), repo: &fakeRepo{}, router: &fakeRouter{},
		doc: mustParse(t, specYAML)}
	h.gates = &fakeGates{clk: h.clk, result: result}
	h.start()
	return h
}

// start runs a new Controller on the harness's store, as a restarted daemon would.
func (h *harness) start() {
	h.ctrl = New(Options{Store: h.store, Repo: h.repo, Router: h.router, Gates: h.gates, Clock: h.clk})
	h.ctrl.Set([]*rollout.Document{h.doc})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.ctrl.Run(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}
	synctest.Wait()
}

// expect checks the rollout's phase and canary weight (in the store, in Git and in the
// cluster) at the given time.
func (h *harness) expect(when string, phase rollout.Phase, canary int) {
	h.t.Helper()
	h.clk.AdvanceTo(at(when))
	st := h.store.get("demo")
	gitCanary := 0
	if ws := h.repo.weights(); len(ws) > 0 {
		gitCanary = ws[len(ws)-1]
	}
	if st.Phase != phase || st.Weights.Canary != canary || gitCanary != canary || h.router.canary() != canary {
		h.t.Errorf("at %s: phase %s, canary %d (Git %d, cluster %d); want %s at %d (message %q)",
			when, st.Phase, st.Weights.Canary, gitCanary, h.router.canary(), phase, canary, st.Message)
	}
}

func pass(time.Time) rollout.Result { return rollout.Pass }

// failFrom passes every check before hhmmss and fails every check from then on.
func failFrom(hhmmss string) func(time.Time) rollout.Result {
	return func(now time.Time) rollout.Result {
		if now.Before(at(hhmmss)) {
			return rollout.Pass
		}
		return rollout.Fail
	}
}

func TestLoopStepsOnTicksAfterBake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), pass)
		defer h.stop()
		h.expect("09:09:59", rollout.Progressing, 0)
		h.expect("09:10:00", rollout.Progressing, 40)
		h.expect("09:19:59", rollout.Progressing, 40)
		h.expect("09:20:00", rollout.Progressing, 100) // the post-promotion bake: 5m, as the bake
		h.expect("09:24:59", rollout.Progressing, 100)
		h.expect("09:25:30", rollout.Succeeded, 100)
		h.expect("10:00:00", rollout.Succeeded, 100)
		if got, want := h.repo.weights(), []int{0, 40, 100}; !cmp.Equal(got, want) {
			t.Errorf("commits of canary weights %v, want %v", got, want)
		}
		if c := h.repo.commits[0]; c.Run != 1 || c.Step != 1 || c.Weights.Canary != 0 {
			t.Errorf("the run's first commit = %+v, want run 1 step 1/3 at 0%%", c)
		}
		c := h.repo.commits[1]
		if c.Run != 1 || c.Step != 2 || c.Steps != 3 || c.Kind != rollout.Forward {
			t.Errorf("first commit = %+v, want run 1 step 2/3 forward", c)
		}
		if n := len(h.store.events("demo", rollout.EventVerdict)); n < 15 {
			t.Errorf("history holds %d verdicts, want one per 30s check at 40%%", n)
		}
	})
}

func TestLoopRollsBackAtOnceAfterFailureLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), failFrom("09:11:30"))
		defer h.stop()
		h.expect("09:10:00", rollout.Progressing, 40)
		h.expect("09:11:59", rollout.Progressing, 40) // one failure: below the limit
		h.expect("09:12:00", rollout.RolledBack, 0)   // the second: at once, not at 09:20
		h.expect("09:30:00", rollout.RolledBack, 0)
		last := h.repo.commits[len(h.repo.commits)-1]
		if last.Kind != rollout.Rollback || last.Reason == "" {
			t.Errorf("rollback commit = %+v, want kind rollback with a reason", last)
		}
		if evs := h.store.events("demo", rollout.EventRolledBack); len(evs) != 1 || !evs[0].Time.Equal(at("09:12:00")) {
			t.Errorf("rolled-back events = %+v, want one at 09:12", evs)
		}
	})
}

func TestLoopTakesOneStepPerTickAfterOutage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), pass)
		h.expect("09:04:00", rollout.Progressing, 0)
		h.stop() // the daemon goes down for two hours: twelve ticks missed
		h.clk.AdvanceTo(at("11:04:00"))
		h.start()
		defer h.stop()
		h.expect("11:09:59", rollout.Progressing, 0)
		h.expect("11:10:00", rollout.Progressing, 40) // one step, not a burst
		h.expect("11:19:59", rollout.Progressing, 40)
		h.expect("11:20:00", rollout.Progressing, 100)
		h.expect("11:25:30", rollout.Succeeded, 100)
		if got, want := h.repo.weights(), []int{0, 40, 100}; !cmp.Equal(got, want) {
			t.Errorf("commits of canary weights %v, want %v", got, want)
		}
	})
}

func TestLoopHoldsWhileInconclusive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), func(now time.Time) rollout.Result {
			if now.Before(at("09:15:00")) || !now.Before(at("09:35:00")) {
				return rollout.Pass
			}
			return rollout.Inconclusive
		})
		defer h.stop()
		h.expect("09:10:00", rollout.Progressing, 40)
		h.expect("09:30:00", rollout.Progressing, 40) // no data: hold, neither forward nor back
		h.expect("09:39:59", rollout.Progressing, 40)
		h.expect("09:40:00", rollout.Progressing, 100)
		h.expect("09:45:30", rollout.Succeeded, 100)
	})
}

func TestLoopRollsBackDuringThePostPromotionBake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), failFrom("09:21:00"))
		defer h.stop()
		h.expect("09:20:00", rollout.Progressing, 100)
		h.expect("09:21:59", rollout.RolledBack, 0) // two failed checks at 100%: back at once
		if evs := h.store.events("demo", rollout.EventSucceeded); len(evs) != 0 {
			t.Errorf("succeeded events %+v for a canary that failed at 100%%", evs)
		}
	})
}

func TestLoopOperatorActionsAndGitWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), pass)
		defer h.stop()
		ctx := context.Background()
		h.expect("09:10:00", rollout.Progressing, 40)
		if err := h.ctrl.Act(ctx, "demo", Operator{Action: Pause, Actor: "alice", Reason: "looking"}); err != nil {
			t.Fatal(err)
		}
		h.expect("09:20:00", rollout.Paused, 40) // no step while paused
		err := h.ctrl.Act(ctx, "demo", Operator{Action: Pause, Actor: "alice"})
		if !errors.Is(err, ErrIllegal) {
			t.Errorf("pausing twice: err = %v, want ErrIllegal", err)
		}
		if err := h.ctrl.Act(ctx, "nope", Operator{Action: Pause}); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown rollout: err = %v, want ErrNotFound", err)
		}
		// A person reverts the 40% commit in Git.
		change := rollout.GitChange{Rollout: "demo", Weights: rollout.CanaryAt(0), Commit: "revert1", Author: "bob", Cause: rollout.CauseRevert}
		h.repo.mu.Lock()
		h.repo.commits = append(h.repo.commits, rollout.Commit{Weights: change.Weights, Actor: "bob"})
		h.repo.mu.Unlock()
		if err := h.ctrl.Observe(ctx, change); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		commits := len(h.repo.commits)
		h.expect("10:00:00", rollout.Overridden, 0) // the cluster follows Git, and nothing moves
		if len(h.repo.commits) != commits {
			t.Errorf("canaryd committed after being overridden: %+v", h.repo.commits[commits:])
		}
		if evs := h.store.events("demo", rollout.EventOverridden); len(evs) != 1 || evs[0].Actor != "bob" {
			t.Errorf("overridden events = %+v, want one by bob", evs)
		}
		if err := h.ctrl.Act(ctx, "demo", Operator{Action: Resume, Actor: "alice"}); err != nil {
			t.Fatal(err)
		}
		h.expect("10:10:00", rollout.Progressing, 40)
		if err := h.ctrl.Act(ctx, "demo", Operator{Action: Abort, Actor: "alice", Reason: "bad build"}); err != nil {
			t.Fatal(err)
		}
		h.expect("10:10:01", rollout.Aborted, 0)
		last := h.repo.commits[len(h.repo.commits)-1]
		if last.Actor != "alice" || last.Reason != "bad build" || last.Kind != rollout.Abort {
			t.Errorf("abort commit = %+v", last)
		}
	})
}

func TestLoopRetriesRollbackUntilCommitted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), failFrom("09:11:30"))
		defer h.stop()
		h.expect("09:10:00", rollout.Progressing, 40)
		h.repo.mu.Lock()
		h.repo.fail = errors.New("remote unreachable")
		h.repo.mu.Unlock()
		h.clk.AdvanceTo(at("09:12:00"))
		if h.router.canary() != 0 {
			t.Fatalf("cluster canary = %d, want 0 applied before the commit", h.router.canary())
		}
		applied := len(h.router.applied)
		h.clk.AdvanceTo(at("09:12:10"))
		if len(h.router.applied) <= applied {
			t.Errorf("canary 0 was not re-asserted while the push failed")
		}
		h.repo.mu.Lock()
		h.repo.fail = nil
		h.repo.mu.Unlock()
		h.expect("09:13:30", rollout.RolledBack, 0)
		if st := h.store.get("demo"); st.Pending != nil {
			t.Errorf("pending move %+v left after the push landed", st.Pending)
		}
	})
}

// TestRollbackCommitsWhileTheClusterIsSlow: a rollback's commit does not wait for its
// apply. With the API server's answer held, the rollback is already in Git; once the answer
// comes, the cluster is at 0 too.
func TestRollbackCommitsWhileTheClusterIsSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), failFrom("09:11:30"))
		defer h.stop()
		h.expect("09:10:00", rollout.Progressing, 40)
		hold := make(chan struct{})
		h.router.setHold(hold)
		h.clk.AdvanceTo(at("09:12:00"))
		synctest.Wait()
		if ws := h.repo.weights(); len(ws) == 0 || ws[len(ws)-1] != 0 {
			t.Errorf("commits %v while the cluster's answer is held: the rollback waited for it", ws)
		}
		if c := h.router.canary(); c != 40 {
			t.Fatalf("cluster canary %d while its answer is held, want 40 (the fake let an apply through)", c)
		}
		h.router.setHold(nil)
		close(hold)
		h.expect("09:13:30", rollout.RolledBack, 0)
		if c := h.router.canary(); c != 0 {
			t.Errorf("cluster canary %d after the rollback, want 0", c)
		}
	})
}

// TestFailingRollbackBacksOff: a rollback whose commit keeps failing is retried with a
// doubling backoff up to a minute, re-asserting canary 0 in the cluster each time, and
// history holds one failure per backoff level, not one per try.
func TestFailingRollbackBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, at("09:03:00"), failFrom("09:11:30"))
		defer h.stop()
		h.expect("09:10:00", rollout.Progressing, 40)
		h.repo.setFail(errors.New("push: remote hung up"))
		h.clk.AdvanceTo(at("09:22:00")) // ten minutes of failing pushes after the rollback
		if c := h.router.canary(); c != 0 {
			t.Errorf("cluster canary %d while the rollback's commit fails, want 0", c)
		}
		tries, evs := h.repo.failedTries(), len(h.store.events("demo", rollout.EventMoveFailed))
		if tries < 8 || tries > 25 {
			t.Errorf("%d tries in ten minutes, want a doubling backoff capped at 1m (about 15)", tries)
		}
		if evs >= 20 || evs > tries {
			t.Errorf("%d move-failed events for %d tries, want fewer than 20: one per backoff level", evs, tries)
		}
		h.repo.setFail(nil)
		h.clk.AdvanceTo(at("09:24:00"))
		if st := h.store.get("demo"); st.Phase != rollout.RolledBack || st.Pending != nil {
			t.Errorf("after the remote came back: %s, pending %+v; want the rollback landed", st.Phase, st.Pending)
		}
		t.Logf("%d tries, %d move-failed events", tries, evs)
	})
}
