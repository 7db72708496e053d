package gitops

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/object"

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

// moveOf is one rollout's move in a commit.
type moveOf struct {
	doc *rollout.Document
	c   rollout.Commit
}

// batchMessage returns the message of a commit that carries several rollouts' moves (one
// move alone gets Message): a subject that counts them, each rollout's sentence, a blank
// line, and each rollout's trailers in turn, every group starting with its Rollout trailer,
// e.g.
//
//	2 rollouts: step ×2
//
//	grpc-a: step 2/3, canary v2 at 40%
//	grpc-b: step 2/3, canary v2 at 40%
//
//	Rollout: grpc-a
//	Rollout-Kind: step
//	...
//	Rollout: grpc-b
//	...
func batchMessage(moves []moveOf) string {
	if len(moves) == 1 {
		return Message(moves[0].doc, moves[0].c)
	}
	var kinds []string
	count := map[string]int{}
	for _, m := range moves {
		k := m.c.Kind.TrailerKind()
		if count[k] == 0 {
			kinds = append(kinds, k)
		}
		count[k]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d rollouts:", len(moves)) // no rollout's name has a space
	for i, k := range kinds {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s ×%d", k, count[k])
	}
	b.WriteString("\n\n")
	for _, m := range moves {
		b.WriteString(subject(m.doc, m.c))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	for _, m := range moves {
		msg := Message(m.doc, m.c)
		b.WriteString(msg[strings.Index(msg, "\n\n")+2:])
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

// sections returns the trailers of a commit message, one map per rollout: the last
// paragraph's "Key: value" lines, split where a Rollout trailer starts the next rollout's
// (a batch commit carries several). Lines before the first Rollout trailer belong to the
// first section. Within a section the first value of a key wins. A subject alone has none.
func sections(msg string) []map[string]string {
	msg = strings.TrimRight(strings.ReplaceAll(msg, "\r\n", "\n"), "\n")
	i := strings.LastIndex(msg, "\n\n")
	if i < 0 {
		return nil
	}
	var out []map[string]string
	cur := map[string]string{}
	for line := range strings.SplitSeq(msg[i+2:], "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		if _, named := cur[TrailerRollout]; named && k == TrailerRollout {
			out, cur = append(out, cur), map[string]string{}
		}
		if _, dup := cur[k]; !dup {
			cur[k] = strings.TrimSpace(v)
		}
	}
	out = append(out, cur)
	if len(out) > 1 { // a batch commit: each rollout's sentence is a line of the body
		said := map[string]string{}
		for line := range strings.SplitSeq(msg[:i], "\n") {
			if name, _, ok := strings.Cut(line, ": "); ok {
				said[name] = line
			}
		}
		for _, t := range out {
			if line, ok := said[t[TrailerRollout]]; ok {
				t[sentenceKey] = line
			}
		}
	}
	return out
}

// sentenceKey holds, among a batch commit's trailers of a rollout, the rollout's sentence
// (no trailer's key has a space).
const sentenceKey = " sentence"

// ownedBy reports whether a commit message carries canaryd's trailers for the rollout, and
// returns them.
func ownedBy(msg, name string) (map[string]string, bool) {
	if !strings.Contains(msg, TrailerRollout+": "+name) {
		return nil, false // most commits of a busy repo are other rollouts'
	}
	for _, t := range sections(msg) {
		if t[TrailerRollout] == name && t[TrailerWeights] != "" {
			return t, true
		}
	}
	return nil, false
}

// maxGroups bounds Repo.groups by the rollouts its commits carry (a few hundred bytes each).
const maxGroups = 100000

// ownTrailers is ownedBy for commit c, reading a big commit's groups once. The caller holds
// the repo lock.
func (r *Repo) ownTrailers(c *object.Commit, name string) (map[string]string, bool) {
	if len(c.Message) < 4096 {
		return ownedBy(c.Message, name)
	}
	by, ok := r.groups[c.Hash]
	if !ok {
		by = map[string]map[string]string{}
		owned(c.Message, func(n string, t map[string]string) {
			if _, dup := by[n]; !dup {
				by[n] = t
			}
		})
		if r.groupsN += len(by); r.groupsN > maxGroups {
			clear(r.groups)
			r.groupsN = len(by)
		}
		r.groups[c.Hash] = by
	}
	t, ok := by[name]
	return t, ok
}

// owned calls fn with each rollout's trailers that a commit message carries.
func owned(msg string, fn func(name string, t map[string]string)) {
	for _, t := range sections(msg) {
		if name := t[TrailerRollout]; name != "" && t[TrailerWeights] != "" {
			fn(name, t)
		}
	}
}

// sentenceOf is the sentence a commit says of the rollout: its subject, or in a batch
// commit the line of its body that starts with the rollout's name.
func sentenceOf(msg, name string) string {
	subj, body, _ := strings.Cut(msg, "\n")
	if strings.HasPrefix(subj, name+": ") {
		return subj
	}
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, name+": ") {
			return line
		}
	}
	return subj
}

// kindOf tells what a canaryd commit did from its subject, as subject writes it.
func kindOf(msg, name string) rollout.MoveKind {
	s := strings.TrimPrefix(sentenceOf(msg, name), name+": ")
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
