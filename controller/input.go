package controller

import (
	"errors"
	"fmt"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// Input is one thing that happened to a rollout: Start, Tick, Verdicts, Operator, Git or
// Applied. Decide turns it into the rollout's next state.
type Input interface{ input() }

// Start begins a new run for a rollout that is Idle (a new canary).
type Start struct{}

// Tick is a cron tick of the rollout's schedule, the only time a step forward may be taken.
type Tick struct{ At time.Time }

// Verdicts are the results of one round of checks: metric gates and the probe (whose gate is
// rollout.ProbeGate).
type Verdicts struct{ Verdicts []rollout.Verdict }

// Action is an operator's request.
type Action string

// The operator actions.
const (
	Pause   Action = "pause"
	Resume  Action = "resume"
	Promote Action = "promote"
	Abort   Action = "abort"
	Retry   Action = "retry"
	Undo    Action = "undo"
)

// Actions lists every operator action.
var Actions = []Action{Pause, Resume, Promote, Abort, Retry, Undo}

// ParseAction returns the action named s.
func ParseAction(s string) (Action, error) {
	for _, a := range Actions {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown action %q (known: %v)", s, Actions)
}

// Operator is an action requested by a person, recorded with who and why. Full asks a
// Promote to go to the last step at once rather than take the next step.
type Operator struct {
	Action Action
	Actor  string
	Reason string
	Full   bool
}

// Git is what Git now says about the rollout's weights: canaryd's own commit or someone else's.
type Git struct{ Change rollout.GitChange }

// Applied reports how a move went: Err is nil when Git and the cluster hold its weights.
// Quiet asks that a failure not be recorded in history again (the move keeps failing at
// the longest backoff, whose first failure was recorded).
type Applied struct {
	Move   rollout.Move
	Commit string
	Err    error
	Quiet  bool
}

// SpecChanged says that the rollout's spec changed from Old to the document Decide is
// given. The new spec applies from the next move: the rollout stays at its weights, and its
// step becomes the new step of that weight or, when the weight is no longer a step, the
// last step below it, so that it continues to the next higher step of the new list. A
// document marked Invalidated is the last valid spec of one that no longer validates.
type SpecChanged struct{ Old *rollout.Document }

func (SpecChanged) input() {}

func (Start) input()    {}
func (Tick) input()     {}
func (Verdicts) input() {}
func (Operator) input() {}
func (Git) input()      {}
func (Applied) input()  {}

// ErrIllegal is returned for an operator action that the rollout's phase does not allow.
var ErrIllegal = errors.New("action not allowed in this phase")
