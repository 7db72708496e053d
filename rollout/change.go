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
	// Base and BaseOwn are what the controller believes the branch head holds: the
	// rollout's weights and its newest commit with the rollout's trailers ("" for none).
	// The write is a compare-and-swap on them: when Git holds anything else, nothing is
	// written and the change is returned as an *ExternalChangeError.
	Base    Weights
	BaseOwn string
}

// Record is one commit with a rollout's trailers, as read back from Git: enough to
// rebuild the rollout's state (Recover) and its history.
type Record struct {
	Commit  string    `json:"commit"`
	Kind    MoveKind  `json:"kind"`
	Run     int       `json:"run"`
	Step    int       `json:"step"` // index into Spec.Steps; -1 when the commit names no step
	Steps   int       `json:"steps"`
	Weights Weights   `json:"weights"`
	Actor   string    `json:"actor,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Author  string    `json:"author,omitempty"`
	Time    time.Time `json:"time"`
	Subject string    `json:"subject,omitempty"`
}

// Matches reports whether the record is the commit of m: same kind, run, step and weights.
// A record that matches the move a rollout has pending is that move's commit, whichever
// process pushed it.
func (r Record) Matches(m Move) bool {
	return r.Kind == kindOrForward(m.Kind) && r.Run == m.Run && r.Step == m.Step && r.Weights == m.Weights
}

func kindOrForward(k MoveKind) MoveKind {
	if k == "" {
		return Forward
	}
	return k
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
	// Latest is the newest commit with the rollout's trailers at the head, nil when there
	// is none. Together with Weights it is what Git says of the rollout; the controller
	// compares both with what it believes.
	Latest *Record `json:"latest,omitempty"`
}

// LatestCommit is the hash of Latest, or "" when there is none.
func (c GitChange) LatestCommit() string {
	if c.Latest == nil {
		return ""
	}
	return c.Latest.Commit
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
