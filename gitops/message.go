package gitops

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/canarydio/canaryd/rollout"
)

// The trailer keys of canaryd's commits (docs/trailers.md describes each). Rollout-Kind
// is one of step, rollback, abort, promote, pause, resume, retry and undo.
const (
	TrailerRollout = "Rollout"
	TrailerKind    = "Rollout-Kind"
	TrailerRun     = "Rollout-Run"
	TrailerStep    = "Rollout-Step"
	TrailerWeights = "Rollout-Weights"
	TrailerReason  = "Rollout-Reason"
	TrailerActor   = "Rollout-Actor"
)

// Message returns the commit message for c: one sentence a person reads, a blank line,
// and the trailers tools parse, e.g.
//
//	grpc-helloworld-py: step 2/3, canary v2 at 40%
//
//	Rollout: grpc-helloworld-py
//	Rollout-Kind: step
//	Rollout-Run: 1
//	Rollout-Step: 2/3
//	Rollout-Weights: v1=60,v2=40
func Message(doc *rollout.Document, c rollout.Commit) string {
	var b strings.Builder
	b.WriteString(subject(doc, c))
	b.WriteString("\n\n")
	trailer := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, oneLine(v)) }
	trailer(TrailerRollout, doc.Name())
	trailer(TrailerKind, c.Kind.TrailerKind())
	trailer(TrailerRun, strconv.Itoa(c.Run))
	if c.Step > 0 {
		trailer(TrailerStep, fmt.Sprintf("%d/%d", c.Step, c.Steps))
	}
	trailer(TrailerWeights, doc.Spec.Describe(c.Weights))
	if c.Reason != "" {
		trailer(TrailerReason, c.Reason)
	}
	if c.Actor != "" {
		trailer(TrailerActor, c.Actor)
	}
	return b.String()
}

// subject is the sentence of the commit message.
func subject(doc *rollout.Document, c rollout.Commit) string {
	at := fmt.Sprintf("canary %s at %d%%", doc.Spec.Canary, c.Weights.Canary)
	var s string
	switch c.Kind {
	case rollout.Rollback:
		s = "roll back, " + at
	case rollout.Abort:
		s = "abort, " + at
	case rollout.Undo:
		s = "undo, " + at
	case rollout.Promote:
		s = fmt.Sprintf("promote to step %d/%d, %s", c.Step, c.Steps, at)
	case rollout.Follow:
		s = "follow Git, " + at
	case rollout.Pause:
		s = "pause" + atStep(c) + ", " + at
	case rollout.Resume:
		s = "resume" + atStep(c) + ", " + at
	case rollout.Retry:
		s = fmt.Sprintf("retry, run %d%s, %s", c.Run, atStep(c), at)
	default:
		if c.Step > 0 {
			s = fmt.Sprintf("step %d/%d, %s", c.Step, c.Steps, at)
		} else {
			s = "set " + at
		}
	}
	var why []string
	if c.Reason != "" {
		why = append(why, oneLine(c.Reason))
	}
	if c.Actor != "" {
		why = append(why, "by "+oneLine(c.Actor))
	}
	if len(why) > 0 {
		s += " (" + strings.Join(why, ", ") + ")"
	}
	return doc.Name() + ": " + s
}

// atStep names the step a hold was taken at, when it names one.
func atStep(c rollout.Commit) string {
	if c.Step > 0 {
		return fmt.Sprintf(" at step %d/%d", c.Step, c.Steps)
	}
	return ""
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// trailers returns the trailers of a commit message: the "Key: value" lines of its last
// paragraph. The first value of a key wins.
func trailers(msg string) map[string]string {
	msg = strings.TrimRight(strings.ReplaceAll(msg, "\r\n", "\n"), "\n")
	last := msg
	if i := strings.LastIndex(msg, "\n\n"); i >= 0 {
		last = msg[i+2:]
	} else {
		return nil // a subject alone has no trailers
	}
	t := map[string]string{}
	for _, line := range strings.Split(last, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		if _, dup := t[k]; !dup {
			t[k] = strings.TrimSpace(v)
		}
	}
	return t
}

// ownedBy reports whether a commit message carries canaryd's trailers for the rollout.
func ownedBy(msg, name string) (map[string]string, bool) {
	t := trailers(msg)
	if t[TrailerRollout] != name || t[TrailerWeights] == "" {
		return nil, false
	}
	return t, true
}

// kindOf tells what a canaryd commit did from its subject, as subject writes it.
func kindOf(msg, name string) rollout.MoveKind {
	s, _, _ := strings.Cut(msg, "\n")
	s = strings.TrimPrefix(s, name+": ")
	switch {
	case strings.HasPrefix(s, "roll back"):
		return rollout.Rollback
	case strings.HasPrefix(s, "abort"):
		return rollout.Abort
	case strings.HasPrefix(s, "undo"):
		return rollout.Undo
	case strings.HasPrefix(s, "promote"):
		return rollout.Promote
	case strings.HasPrefix(s, "follow"):
		return rollout.Follow
	case strings.HasPrefix(s, "pause"):
		return rollout.Pause
	case strings.HasPrefix(s, "resume"):
		return rollout.Resume
	case strings.HasPrefix(s, "retry"):
		return rollout.Retry
	}
	return rollout.Forward
}
