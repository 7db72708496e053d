package rollout

import (
	"fmt"
	"time"
)

// Weights is the traffic split of one route between the stable and the canary subset, in
// percent. A valid Weights sums to 100.
type Weights struct {
	Stable int `json:"stable"`
	Canary int `json:"canary"`
}

// CanaryAt returns the weights that send canary percent of the traffic to the canary.
func CanaryAt(canary int) Weights { return Weights{Stable: 100 - canary, Canary: canary} }

// Valid reports whether both weights are within 0..100 and sum to 100.
func (w Weights) Valid() bool {
	return w.Stable >= 0 && w.Canary >= 0 && w.Stable+w.Canary == 100
}

// String formats the weights as "stable/canary", e.g. "60/40".
func (w Weights) String() string { return fmt.Sprintf("%d/%d", w.Stable, w.Canary) }

// Phase is where a rollout is in its life. Phases are persisted as these strings.
type Phase string

// The phases of a rollout's life (docs/spec.md, "Phases"), plus Invalid for a spec that does
// not validate.
const (
	Idle        Phase = "Idle"
	Progressing Phase = "Progressing"
	Paused      Phase = "Paused"
	Succeeded   Phase = "Succeeded"
	RolledBack  Phase = "RolledBack"
	Overridden  Phase = "Overridden"
	Aborted     Phase = "Aborted"
	Invalid     Phase = "Invalid"
)

// Phases lists every phase, in the order of the lifecycle.
var Phases = []Phase{Idle, Progressing, Paused, Succeeded, RolledBack, Overridden, Aborted, Invalid}

// Terminal reports whether the phase ends a run: only retry (or a new spec) starts another.
func (p Phase) Terminal() bool {
	switch p {
	case Succeeded, RolledBack, Aborted:
		return true
	}
	return false
}

// Result is the outcome of one check. The four outcomes are kept apart on purpose: an Error
// (the gate could not ask) and an Inconclusive (the gate asked and got no usable answer) never
// count as a Pass.
type Result string

// The outcomes of a check.
const (
	Pass         Result = "pass"
	Fail         Result = "fail"
	Inconclusive Result = "inconclusive"
	Error        Result = "error"
)

// Verdict is the outcome of one gate's check, with the evidence it was based on.
type Verdict struct {
	Gate     string     `json:"gate"`
	Result   Result     `json:"result"`
	Time     time.Time  `json:"time"`
	Reason   string     `json:"reason,omitempty"`
	Evidence []Evidence `json:"evidence,omitempty"`
	// Test is the statistical test of a vs-stable gate, with its counts.
	Test *TestEvidence `json:"test,omitempty"`
}

// Evidence is one measurement behind a verdict: a PromQL query and its value against the
// threshold, or one probe call.
type Evidence struct {
	// Query is the rendered PromQL, or the probe's invocation.
	Query     string  `json:"query,omitempty"`
	Value     float64 `json:"value"`
	Threshold string  `json:"threshold,omitempty"`
	Samples   int     `json:"samples,omitempty"`
	// Code is the gRPC status code of a probe call ("OK", "UNAVAILABLE", ...).
	Code    string        `json:"code,omitempty"`
	Latency time.Duration `json:"latency,omitempty"`
	Reply   string        `json:"reply,omitempty"`
	Backend string        `json:"backend,omitempty"`
	Reason  string        `json:"reason,omitempty"`
}

// MoveKind says why the weights of a rollout are being changed.
type MoveKind string

// The kinds of move. A Forward move commits first and then applies (Git leads); a Rollback
// or an Abort applies first and then commits (safety leads); a Promote is a forward move an
// operator asked for; a Follow applies weights that a person committed to Git. Pause,
// Resume and Retry are an operator's holds: each is a commit that records the hold in Git
// (Retry also starts a new run), so that it survives restarts, lost stores and takeovers.
const (
	Forward  MoveKind = "forward"
	Rollback MoveKind = "rollback"
	Abort    MoveKind = "abort"
	Promote  MoveKind = "promote"
	Follow   MoveKind = "follow"
	Pause    MoveKind = "pause"
	Resume   MoveKind = "resume"
	Retry    MoveKind = "retry"
)

// Backward reports whether the move takes traffic away from the canary for safety, so it
// must be applied to the cluster before it is committed and must never wait for a tick.
func (k MoveKind) Backward() bool { return k == Rollback || k == Abort }

// Hold reports whether the move only records an operator's hold in Git: it changes no
// weight, so the cluster has nothing to apply.
func (k MoveKind) Hold() bool { return k == Pause || k == Resume }

// TrailerKind is the word the Rollout-Kind trailer of a commit of kind k carries:
// step, rollback, abort, promote, pause, resume or retry.
func (k MoveKind) TrailerKind() string {
	if k == Forward || k == "" {
		return "step"
	}
	return string(k)
}

// ParseTrailerKind is the inverse of TrailerKind; ok is false for a word it does not know.
func ParseTrailerKind(s string) (k MoveKind, ok bool) {
	switch MoveKind(s) {
	case "step":
		return Forward, true
	case Rollback, Abort, Promote, Pause, Resume, Retry:
		return MoveKind(s), true
	}
	return "", false
}

// Move is an idempotent intent to set a rollout's weights ("set canary = 40", never "add
// 20"). It is persisted in State.Pending before it is carried out, so that a crash between
// Git and the cluster is finished on restart.
type Move struct {
	Kind    MoveKind  `json:"kind"`
	Run     int       `json:"run"`
	Step    int       `json:"step"` // index into Spec.Steps the move lands on; -1 for none
	Weights Weights   `json:"weights"`
	Reason  string    `json:"reason,omitempty"`
	Actor   string    `json:"actor,omitempty"`
	Since   time.Time `json:"since"`
	// Commit is the Git commit that already holds the weights (a Follow, or a move whose
	// commit landed before a crash); empty when the move still has to be committed.
	Commit string `json:"commit,omitempty"`
}

// GateState is what the controller remembers of one gate during the current step.
type GateState struct {
	Last     Result `json:"last"`
	Failures int    `json:"failures"` // consecutive failed checks
}

// State is the persisted state of one rollout: what canaryd believes and intends.
type State struct {
	Rollout string  `json:"rollout"`
	Phase   Phase   `json:"phase"`
	Run     int     `json:"run"`
	Step    int     `json:"step"` // index into Spec.Steps; -1 before the first step
	Weights Weights `json:"weights"`
	// StepSince is when the current step began; BakeSince is when its bake window began
	// (the step start, moved forward by every failed check).
	StepSince time.Time `json:"stepSince"`
	BakeSince time.Time `json:"bakeSince"`
	// LastTick is the last cron tick the rollout acted on; ticks at or before it are ignored.
	LastTick time.Time            `json:"lastTick"`
	Gates    map[string]GateState `json:"gates,omitempty"`
	Pending  *Move                `json:"pending,omitempty"`
	// Superseded is a move that a newer one replaced while it may still have been carried
	// out (a step forward cut short by an abort): should its commit turn up in Git, it is
	// the rollout's own, and the newer move goes on from it.
	Superseded *Move `json:"superseded,omitempty"`
	// Own is the newest commit with this rollout's trailers that the state accounts for
	// (canaryd's own, or another party's that was accepted as Overridden). A write to Git
	// expects it at the branch head; anything newer is an external change.
	Own string `json:"own,omitempty"`
	// LastVerdict is the most recent verdict of any gate.
	LastVerdict *Verdict `json:"lastVerdict,omitempty"`
	// Stuck is set while the current step is past its progress deadline.
	Stuck   *Condition `json:"stuck,omitempty"`
	Commit  string     `json:"commit,omitempty"`
	Message string     `json:"message,omitempty"`
	Updated time.Time  `json:"updated"`
}

// EventKind names what an Event records.
type EventKind string

// The kinds of history event.
const (
	EventStarted    EventKind = "started"
	EventVerdict    EventKind = "verdict"
	EventIntent     EventKind = "intent"
	EventStep       EventKind = "step"
	EventMoveFailed EventKind = "move-failed"
	EventRolledBack EventKind = "rolled-back"
	EventSucceeded  EventKind = "succeeded"
	EventPaused     EventKind = "paused"
	EventResumed    EventKind = "resumed"
	EventPromoted   EventKind = "promoted"
	EventAborted    EventKind = "aborted"
	EventOverridden EventKind = "overridden"
	EventInvalid    EventKind = "invalid"
	// EventTakeover records that a replica took over the rollout (it gained the lease, or
	// started) and rebuilt its state from Git.
	EventTakeover EventKind = "takeover"
)

// Event is one entry of a rollout's append-only history. Seq is assigned by the store and
// rises by one per event of a rollout.
type Event struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Rollout string    `json:"rollout"`
	Kind    EventKind `json:"kind"`
	Run     int       `json:"run"`
	Step    int       `json:"step"`
	Weights Weights   `json:"weights"`
	Phase   Phase     `json:"phase"`
	Verdict *Verdict  `json:"verdict,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	Actor   string    `json:"actor,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	// Count is how many consecutive identical verdicts of one gate this event stands for
	// (0 or 1: one); Until is the time of the last of them. The store folds them.
	Count int       `json:"count,omitempty"`
	Until time.Time `json:"until,omitzero"`
}
