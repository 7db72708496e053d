package rollout

import (
	"fmt"
	"time"
)

// Commit describes one weight change canaryd writes to Git: the sentence of the commit
// message and its trailers (Rollout, Rollout-Run, Rollout-Step, Rollout-Weights, and
// Rollout-Reason / Rollout-Actor when set).
type Commit struct {
	Kind    MoveKind
	Run     int
	Step    int // 1-based step number k of N; 0 when the move lands on no step (a rollback)
	Steps   int // N
	Weights Weights
	Reason  string
	Actor   string
}

// Cause says why the weights in Git changed.
type Cause string

// The causes of a change in Git.
const (
	CauseCanaryd Cause = "canaryd" // a commit canaryd made (it carries canaryd's trailers)
	CauseRevert  Cause = "revert"  // a revert of one of canaryd's commits
	CauseEdit    Cause = "edit"    // anything else: a person edited the weights
)

// GitChange is what Git now says about a managed VirtualService's weights, and who made it so.
type GitChange struct {
	Rollout string    `json:"rollout"`
	Weights Weights   `json:"weights"`
	Commit  string    `json:"commit"`
	Author  string    `json:"author"`
	Time    time.Time `json:"time"`
	Cause   Cause     `json:"cause"`
	// Reverts is the commit a revert undid, when known.
	Reverts string `json:"reverts,omitempty"`
}

// Own reports whether canaryd made the change.
func (c GitChange) Own() bool { return c.Cause == CauseCanaryd }

// ExternalChangeError reports that the weights in Git are not the ones canaryd last wrote:
// someone else changed them, and the controller must decide (Git wins).
type ExternalChangeError struct {
	Change GitChange
	File   string
}

func (e *ExternalChangeError) Error() string {
	return fmt.Sprintf("%s: weights changed outside canaryd to %s by %s in %.12s (%s)",
		e.File, e.Change.Weights, e.Change.Author, e.Change.Commit, e.Change.Cause)
}
