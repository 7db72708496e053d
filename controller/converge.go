package controller

import (
	"context"
	"fmt"
	"time"
)

// DefaultConvergeTimeout bounds how long a forward step waits for the cluster to carry its
// weights in gitops mode.
const DefaultConvergeTimeout = 5 * time.Minute

// converge waits, in gitops mode with a Converger, until the cluster carries a forward
// move's weights, so that the step's bake starts with real traffic. A cluster that does not
// converge in time fails the move with that reason; the next tick tries again (the commit
// is already there, so only the wait repeats).
func (w *worker) converge(ctx context.Context, j job) error {
	m := j.m
	cv := w.c.opts.Converger
	if cv == nil || w.c.opts.Router != nil {
		return nil
	}
	limit := w.c.opts.ConvergeTimeout
	if limit <= 0 {
		limit = DefaultConvergeTimeout
	}
	took, err := cv.WaitFor(ctx, j.doc, m.Weights, limit)
	if err != nil {
		return fmt.Errorf("the cluster did not carry %s within %s: %w", m.Weights, limit, err)
	}
	w.log.Info("cluster carries the weights", "weight", m.Weights.Canary, "took", took)
	w.hook("converged", m)
	return nil
}
