package controller

import (
	"context"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// Repo is the Git side of a rollout: the source of truth and the audit log.
type Repo interface {
	// SetWeights makes the branch head hold w for the rollout's VirtualService, committing
	// and pushing c when it does not already; it returns the commit that holds w. It is
	// idempotent. When Git holds weights canaryd did not write, it changes nothing and
	// returns a *rollout.ExternalChangeError.
	SetWeights(ctx context.Context, doc *rollout.Document, c rollout.Commit) (commit string, err error)
}

// Observer is a Repo that can say what Git holds for a rollout at the head as last
// fetched: the weights, the commit that set them, and the newest commit with the rollout's
// trailers. A worker reads it before it moves, and rebuilds its state when the store does
// not account for it.
type Observer interface {
	Observe(doc *rollout.Document) (rollout.GitChange, error)
}

// HistoryReader is a Repo that can rebuild a rollout's history from the trailers of its
// commits, newest first, at most limit events.
type HistoryReader interface {
	History(ctx context.Context, doc *rollout.Document, limit int) ([]rollout.Event, error)
}

// Router sets weights in the cluster (apply mode). A nil Router means gitops mode: Argo CD
// or Flux applies what Git holds.
type Router interface {
	// SetWeights sets the weights of the rollout's route, idempotently.
	SetWeights(ctx context.Context, doc *rollout.Document, w rollout.Weights) error
}

// Converger watches the cluster in gitops mode (no Router): after canaryd commits a step
// forward, the step's bake starts only when the live VirtualService carries the committed
// weights (Argo CD or Flux applied them).
type Converger interface {
	// WaitFor returns once the cluster holds w for the rollout, or an error when it does
	// not within deadline. It changes nothing.
	WaitFor(ctx context.Context, doc *rollout.Document, w rollout.Weights, deadline time.Duration) (time.Duration, error)
}

// Preflighter is a Router that can check, before the first step that sends traffic to the
// canary, that the canary can take it (its subset is defined, its workload is available).
type Preflighter interface {
	Preflight(ctx context.Context, doc *rollout.Document) error
}

// Gates checks the canary: every metric gate and the probe.
type Gates interface {
	// Check runs the rollout's gates for the canary at weights w and returns one verdict per
	// gate. A gate that cannot decide returns an Error or Inconclusive verdict, never Pass.
	Check(ctx context.Context, doc *rollout.Document, w rollout.Weights) []rollout.Verdict
}

// StepGates is Gates that keep counts between checks of a step (the vs-stable gates): the
// controller tells them which step a check belongs to, so that a new step or run starts
// afresh.
type StepGates interface {
	CheckStep(ctx context.Context, doc *rollout.Document, key rollout.StepKey, w rollout.Weights) []rollout.Verdict
}

// Store keeps each rollout's state and its history.
type Store interface {
	// Save stores st and appends evs to its history in one durable transaction.
	Save(st rollout.State, evs ...rollout.Event) error
	// State returns the stored state of a rollout; ok is false when there is none.
	State(name string) (st rollout.State, ok bool, err error)
}

// Clock is the controller's source of time.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a stoppable one-shot timer, as time.Timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}
