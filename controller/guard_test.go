package controller

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// panicRepo panics on the first panics calls of SetWeights, then acts as fakeRepo.
type panicRepo struct {
	*fakeRepo
	panics atomic.Int32
}

func (r *panicRepo) SetWeights(ctx context.Context, doc *rollout.Document, c rollout.Commit) (string, error) {
	if r.panics.Add(-1) >= 0 {
		var m map[string]int
		m["boom"]++ // a nil-map write: an adapter bug
	}
	return r.fakeRepo.SetWeights(ctx, doc, c)
}

// panicRouter panics on every call while on is set.
type panicRouter struct {
	*fakeRouter
	on atomic.Bool
}

func (r *panicRouter) SetWeights(ctx context.Context, doc *rollout.Document, w rollout.Weights) error {
	if r.on.Load() {
		panic("router bug")
	}
	return r.fakeRouter.SetWeights(ctx, doc, w)
}

// TestAdapterPanicIsTheRolloutsError: gates that panic give error verdicts (never a pass,
// never a step), a repo and a router that panic fail one attempt that is retried; Run
// never returns an error and the rollout still succeeds once the adapters recover.
func TestAdapterPanicIsTheRolloutsError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &harness{t: t, clk: newFakeClock(at("09:03:00")), store: newMemStore(), repo: &fakeRepo{},
			router: &fakeRouter{}, doc: mustParse(t, specYAML)}
		var gatesPanic atomic.Bool
		h.gates = &fakeGates{clk: h.clk, result: func(time.Time) rollout.Result {
			if gatesPanic.Load() {
				panic("gate bug")
			}
			return rollout.Pass
		}}
		repo := &panicRepo{fakeRepo: h.repo}
		router := &panicRouter{fakeRouter: h.router}
		h.ctrl = New(Options{Store: h.store, Repo: repo, Router: router, Gates: h.gates, Clock: h.clk})
		h.ctrl.Set([]*rollout.Document{h.doc})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.ctrl.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		synctest.Wait()
		h.expect("09:04:00", rollout.Progressing, 0)
		repo.panics.Store(1)
		h.expect("09:10:00", rollout.Progressing, 0)  // the commit panicked: this tick's move failed
		h.expect("09:20:00", rollout.Progressing, 40) // the next tick tried again, gated again

		gatesPanic.Store(true)
		h.expect("09:35:00", rollout.Progressing, 40) // no pass while the gates panic: no step
		var panicked int
		for _, ev := range h.store.events("demo", rollout.EventVerdict) {
			if v := ev.Verdict; v != nil {
				if v.Result == rollout.Pass && strings.Contains(v.Reason, "panicked") {
					t.Errorf("a panicking gate passed: %+v", v)
				}
				if v.Result == rollout.Error && strings.Contains(v.Reason, "panicked") {
					panicked++
				}
			}
		}
		if panicked == 0 {
			t.Errorf("no error verdict says the gates panicked")
		}

		gatesPanic.Store(false)
		router.on.Store(true)
		h.clk.AdvanceTo(at("09:40:00")) // the move to 100 is committed; applying it panics
		if h.router.canary() != 40 {
			t.Errorf("cluster canary = %d while the router panics, want 40", h.router.canary())
		}
		router.on.Store(false)
		h.expect("09:50:00", rollout.Progressing, 100) // applied at the next tick; the post-promotion bake begins
		h.expect("09:56:00", rollout.Succeeded, 100)
	})
}
