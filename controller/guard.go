package controller

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/canarydio/canaryd/rollout"
)

// ErrPanic marks an error that stands for a panic in an adapter (a gate, the router, the
// repo): the call failed for this rollout, and the daemon goes on.
var ErrPanic = errors.New("panicked")

// guard runs one adapter call for the worker's rollout and turns a panic in it into an
// error wrapping ErrPanic, so that an adapter's bug costs this rollout one attempt (retried
// like any failed call), never the daemon. The stack goes to the log once.
func (w *worker) guard(what string, call func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("adapter panicked", "call", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("%s %w: %v", what, ErrPanic, r)
		}
	}()
	return call()
}

// checkGuarded runs the gates; a panic in them is an Error verdict for every gate the
// rollout has at its weight, never a pass.
func (w *worker) checkGuarded(ctx context.Context, j job) []rollout.Verdict {
	st, doc := j.st, j.doc
	var vs []rollout.Verdict
	err := w.guard("gates", func() error {
		if sg, ok := w.c.opts.Gates.(StepGates); ok {
			key := rollout.StepKey{Rollout: st.Rollout, Run: st.Run, Step: st.Step, Since: st.StepSince}
			vs = sg.CheckStep(ctx, doc, key, st.Weights)
			return nil
		}
		vs = w.c.opts.Gates.Check(ctx, doc, st.Weights)
		return nil
	})
	if err == nil {
		return vs
	}
	vs = nil
	for _, g := range doc.Spec.Gates(st.Weights.Canary) {
		vs = append(vs, rollout.Verdict{Gate: g, Result: rollout.Error, Time: w.now(), Reason: err.Error()})
	}
	return vs
}
