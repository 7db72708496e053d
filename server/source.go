// Package server serves canaryd to people and tools: the JSON status API, the status page,
// /metrics, health checks, and operator actions, which it hands to the controller through
// the narrow Source interface declared here. It reads nothing but Source.
package server

import (
	"context"
	"errors"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// Errors a Source returns, which the API maps to HTTP statuses.
var (
	// ErrNotFound: no rollout by that name (404).
	ErrNotFound = errors.New("no such rollout")
	// ErrRefused: the action is not allowed in the rollout's phase (409).
	ErrRefused = errors.New("action refused")
	// ErrNotLeader: this replica follows and carries out no action; the error names the
	// leader (503, with Retry-After).
	ErrNotLeader = errors.New("not the leader")
	// ErrUnavailable: the action cannot be carried out yet (the rollout is starting); 503.
	ErrUnavailable = errors.New("temporarily unavailable")
)

// Rollout is what the status API and page show of one rollout.
type Rollout struct {
	Name    string          `json:"name"`
	Phase   rollout.Phase   `json:"phase"`
	Run     int             `json:"run"`
	Step    int             `json:"step"`  // 1-based k of Steps; 0 before the first step
	Steps   int             `json:"steps"` // N
	Weights rollout.Weights `json:"weights"`
	Stable  string          `json:"stable"`
	Canary  string          `json:"canary"`
	// Stuck is set while the step is past its progress deadline without deciding.
	Stuck *rollout.Condition `json:"stuck,omitempty"`
	// LastVerdict is the most recent check, with its evidence.
	LastVerdict *rollout.Verdict `json:"lastVerdict,omitempty"`
	Commit      string           `json:"commit,omitempty"`
	NextTick    time.Time        `json:"nextTick,omitzero"`
	Message     string           `json:"message,omitempty"`
	// Git says why canaryd cannot reach the Git remote, when it cannot: moves that need a
	// commit wait (a rollback still reaches the cluster in apply mode).
	Git string `json:"git,omitempty"`
	// Problems are the spec's validation errors when Phase is Invalid.
	Problems []rollout.Problem `json:"problems,omitempty"`
	Updated  time.Time         `json:"updated,omitzero"`
}

// Source is everything the server reads and asks for.
type Source interface {
	// Rollouts returns every rollout, sorted by name.
	Rollouts(ctx context.Context) ([]Rollout, error)
	// Rollout returns one rollout, or ErrNotFound.
	Rollout(ctx context.Context, name string) (Rollout, error)
	// History returns up to limit events of a rollout, newest first, with Seq below before
	// (0: from the newest), or ErrNotFound.
	History(ctx context.Context, name string, before uint64, limit int) ([]rollout.Event, error)
	// Act carries out an operator action ("pause", "resume", "promote", "abort", "retry")
	// for actor with reason; it returns ErrNotFound, an error wrapping ErrRefused, or nil
	// once the action is recorded.
	Act(ctx context.Context, name, action, actor, reason string) error
	// Ready returns nil when the daemon is ready (store open, repo fetched), else why not.
	Ready(ctx context.Context) error
}
