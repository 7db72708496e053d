package gitops

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/canarydio/canaryd/rollout"
)

// baseline is what canaryd last wrote for a rollout, or the external change it last
// reported (which it then accepts as the starting point of its next write).
type baseline struct {
	commit  plumbing.Hash // where the walk found it; the head walked from when !found
	weights rollout.Weights
	found   bool
}

// explained caches the change that explains the weights at a head.
type explained struct {
	head   plumbing.Hash
	blob   plumbing.Hash // the manifest's blob at head
	change rollout.GitChange
}

// ackRef is the local ref (in the cache only, never pushed) marking the last external
// change reported for a rollout, so that a restart does not report it again.
func ackRef(name string) plumbing.ReferenceName {
	return plumbing.ReferenceName("refs/canaryd/ack/" + name)
}

// acknowledge records that the external change ch, which set the weights at head, was
// reported: SetWeights starts from head afterwards (kept in the cache across restarts), and
// Sync does not report ch again while the process lives.
func (r *Repo) acknowledge(name string, head plumbing.Hash, ch rollout.GitChange) {
	if err := r.store.SetReference(plumbing.NewHashReference(ackRef(name), head)); err != nil {
		r.log.Warn("record a reported change", "rollout", name, "commit", head.String(), "err", err)
	}
	r.base[name] = baseline{commit: head, weights: ch.Weights, found: true}
	r.reported[name] = ch.Commit
	r.log.Info("weights changed in git", "rollout", name, "commit", ch.Commit, "weight", ch.Weights.String(),
		"author", ch.Author, "cause", string(ch.Cause), "reverts", ch.Reverts)
}

// lastWritten walks back from head to the newest commit canaryd made for doc (or the last
// acknowledged external change) and returns the weights it left.
func (r *Repo) lastWritten(doc *rollout.Document, head *object.Commit) baseline {
	name := doc.Name()
	cached, haveCache := r.base[name]
	var ack plumbing.Hash
	if ref, err := r.store.Reference(ackRef(name)); err == nil {
		ack = ref.Hash()
	}
	c := head
	for n := 0; c != nil && n < r.cfg.MaxWalk; n++ {
		if haveCache && c.Hash == cached.commit {
			return cached
		}
		t, own := ownedBy(c.Message, name)
		if own || c.Hash == ack {
			b := baseline{commit: c.Hash, found: true}
			var err error
			if b.weights, err = r.weightsAt(doc, c); err != nil && own {
				b.weights, _ = doc.Spec.ParseDescribed(t[TrailerWeights])
			}
			r.base[name] = b
			return b
		}
		c = r.parent(c)
	}
	b := baseline{commit: head.Hash} // canaryd has not written for this rollout yet
	r.base[name] = b
	return b
}

// weightsAt reads doc's weights in commit c.
func (r *Repo) weightsAt(doc *rollout.Document, c *object.Commit) (rollout.Weights, error) {
	data, _, err := r.fileAt(c, doc.Spec.Manifest)
	if err != nil {
		return rollout.Weights{}, err
	}
	return ReadWeights(data, RefOf(doc))
}

// checkExternal returns an *rollout.ExternalChangeError when the weights at head (cur) are
// not what canaryd last wrote, and accepts them as reported.
func (r *Repo) checkExternal(doc *rollout.Document, head *object.Commit, cur rollout.Weights) error {
	b := r.lastWritten(doc, head)
	if !b.found || b.weights == cur {
		return nil
	}
	ch, err := r.explain(doc, head)
	if err != nil {
		return err
	}
	r.acknowledge(doc.Name(), head.Hash, ch)
	return &rollout.ExternalChangeError{Change: ch, File: doc.Spec.Manifest}
}

// explain finds the newest commit (first parents from head) that changed doc's weights and
// says who made it and why.
func (r *Repo) explain(doc *rollout.Document, head *object.Commit) (rollout.GitChange, error) {
	name, file := doc.Name(), doc.Spec.Manifest
	prev, havePrev := r.changes[name]
	if havePrev && prev.head == head.Hash {
		return prev.change, nil
	}
	blob := r.blobAt(head, file)
	if havePrev && blob == prev.blob && blob != plumbing.ZeroHash && r.sameBlobSince(head, prev.head, file, blob) {
		// No commit since the last head explained touched the manifest: other files moved
		// the head. Nothing to parse (with many rollouts in one repo, parsing every
		// manifest on every fetch would cost rollouts × fetches).
		r.changes[name] = explained{head: head.Hash, blob: blob, change: prev.change}
		return prev.change, nil
	}
	w, err := r.weightsAt(doc, head)
	if err != nil {
		return rollout.GitChange{}, fmt.Errorf("%s at %.12s: %w", file, head.Hash, err)
	}
	c := head
	for n := 0; n < r.cfg.MaxWalk; n++ {
		if havePrev && c.Hash == prev.head && prev.change.Weights == w {
			r.changes[name] = explained{head: head.Hash, blob: r.blobAt(head, file), change: prev.change}
			return prev.change, nil
		}
		p := r.parent(c)
		if p == nil {
			break
		}
		pBlob := r.blobAt(p, file)
		if pBlob != blob {
			if pw, err := r.weightsAt(doc, p); err != nil || pw != w {
				break // c changed the weights
			}
		}
		c, blob = p, pBlob
	}
	ch := r.classify(doc, c, w)
	r.changes[name] = explained{head: head.Hash, blob: r.blobAt(head, file), change: ch}
	return ch, nil
}

// sameBlobSince reports whether every commit on the first-parent path from head back to
// stop holds blob at file. A manifest changed and changed back (a revert of the step before)
// is byte for byte the same at both ends, yet its weights changed twice in between.
func (r *Repo) sameBlobSince(head *object.Commit, stop plumbing.Hash, file string, blob plumbing.Hash) bool {
	c := head
	for n := 0; c != nil && n < r.cfg.MaxWalk; n++ {
		if c.Hash == stop {
			return true
		}
		if r.blobAt(c, file) != blob {
			return false
		}
		c = r.parent(c)
	}
	return false
}

var revertRe = regexp.MustCompile(`This reverts commit ([0-9a-f]{7,40})`)

// classify says why commit c set the weights w.
func (r *Repo) classify(doc *rollout.Document, c *object.Commit, w rollout.Weights) rollout.GitChange {
	name := doc.Name()
	ch := rollout.GitChange{
		Rollout: name, Weights: w, Commit: c.Hash.String(),
		Author: c.Author.Name, Time: c.Author.When, Cause: rollout.CauseEdit,
	}
	if ch.Author == "" {
		ch.Author = c.Author.Email
	}
	if _, own := ownedBy(c.Message, name); own {
		ch.Cause = rollout.CauseCanaryd
		return ch
	}
	if m := revertRe.FindStringSubmatch(c.Message); m != nil {
		if rc, err := object.GetCommit(r.store, plumbing.NewHash(m[1])); len(m[1]) < 40 || err == nil && isOwn(rc, name) {
			ch.Cause, ch.Reverts = rollout.CauseRevert, m[1]
			return ch
		}
	}
	if undone := r.restoredStep(doc, c); undone != "" {
		ch.Cause, ch.Reverts = rollout.CauseRevert, undone
	}
	return ch
}

func isOwn(c *object.Commit, name string) bool {
	_, own := ownedBy(c.Message, name)
	return own
}

// restoredStep reports whether c put the manifest back as it was at an earlier step (or
// just before one) of canaryd's, and returns canaryd's newest commit that c undid.
func (r *Repo) restoredStep(doc *rollout.Document, c *object.Commit) string {
	name, file := doc.Name(), doc.Spec.Manifest
	blob := r.blobAt(c, file)
	newest := ""
	p := r.parent(c)
	for n := 0; p != nil && n < min(r.cfg.MaxWalk, 1000); n++ {
		if isOwn(p, name) {
			if newest != "" && r.blobAt(p, file) == blob {
				return newest
			}
			if newest == "" {
				newest = p.Hash.String()
			}
			if pp := r.parent(p); pp != nil && r.blobAt(pp, file) == blob {
				return newest
			}
		}
		p = r.parent(p)
	}
	return ""
}

// Manage sets the rollouts whose VirtualServices Sync reports on. SetWeights adds its
// document to the set as well.
func (r *Repo) Manage(docs ...*rollout.Document) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.docs = make(map[string]*rollout.Document, len(docs))
	for _, d := range docs {
		r.docs[d.Name()] = d
	}
}

// Sync fetches the branch and returns, for each managed rollout (by name), the weights at
// the new head and the commit that set them: canaryd's own commit (by its trailers), a
// revert of one of canaryd's commits ("This reverts commit <sha>", or a manifest equal to
// an earlier step), or a hand edit. canaryd's own changes are returned on every call. A
// change that is not canaryd's is returned once per process (not again by a later Sync,
// nor after SetWeights reported it as an *rollout.ExternalChangeError; a restarted process
// reports the newest one once more) and is accepted: SetWeights starts from it afterwards.
// So the caller must hand every result to the controller. A rollout whose manifest cannot
// be read is left out and its error joined into the returned error.
func (r *Repo) Sync(ctx context.Context) ([]rollout.GitChange, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fetch(ctx); err != nil {
		return nil, err
	}
	head, err := r.head()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(r.docs))
	for n := range r.docs {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []rollout.GitChange
	var errs []error
	for _, n := range names {
		ch, err := r.explain(r.docs[n], head)
		if err != nil {
			errs = append(errs, fmt.Errorf("rollout %q: %w", n, err))
			continue
		}
		if !ch.Own() {
			if r.reported[n] == ch.Commit {
				continue
			}
			r.acknowledge(n, head.Hash, ch)
		}
		out = append(out, ch)
	}
	return out, errors.Join(errs...)
}

// Trigger asks a running Watch to sync now. It never blocks.
func (r *Repo) Trigger() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Watch syncs every interval and whenever Trigger is called (the webhook), handing each
// result to fn, until ctx ends; it then returns ctx's error. fn runs on Watch's goroutine.
func (r *Repo) Watch(ctx context.Context, interval time.Duration, fn func([]rollout.GitChange, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-r.kick:
		}
		fn(r.Sync(ctx))
	}
}

// History rebuilds doc's history from the commits with canaryd's trailers on the branch,
// newest first, at most limit events (limit <= 0: as many as Config.MaxWalk commits hold).
// It reads the cache as last fetched. Step is the index into Spec.Steps (-1 for a move
// that lands on no step); the final step also yields a Succeeded event.
func (r *Repo) History(ctx context.Context, doc *rollout.Document, limit int) ([]rollout.Event, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	head, err := r.head()
	if err != nil {
		return nil, err
	}
	var evs []rollout.Event
	c := head
	for n := 0; c != nil && n < r.cfg.MaxWalk && (limit <= 0 || len(evs) < limit); n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if t, own := ownedBy(c.Message, doc.Name()); own {
			evs = append(evs, eventsOf(doc, c, t)...)
		}
		c = r.parent(c)
	}
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	return evs, nil
}

// eventsOf turns one canaryd commit into history events, newest first.
func eventsOf(doc *rollout.Document, c *object.Commit, t map[string]string) []rollout.Event {
	w, _ := doc.Spec.ParseDescribed(t[TrailerWeights])
	run, _ := strconv.Atoi(t[TrailerRun])
	k, steps := -1, len(doc.Spec.Steps)
	if s, n, ok := strings.Cut(t[TrailerStep], "/"); ok {
		if v, err := strconv.Atoi(s); err == nil {
			k = v - 1
		}
		if v, err := strconv.Atoi(n); err == nil {
			steps = v
		}
	}
	subj, _, _ := strings.Cut(c.Message, "\n")
	ev := rollout.Event{
		Time: c.Committer.When, Rollout: doc.Name(), Kind: rollout.EventStep, Run: run, Step: k,
		Weights: w, Phase: rollout.Progressing, Commit: c.Hash.String(),
		Actor: t[TrailerActor], Reason: t[TrailerReason], Message: subj,
	}
	switch kindOf(c.Message, doc.Name()) {
	case rollout.Rollback:
		ev.Kind, ev.Phase = rollout.EventRolledBack, rollout.RolledBack
	case rollout.Abort:
		ev.Kind, ev.Phase = rollout.EventAborted, rollout.Aborted
	}
	if ev.Kind == rollout.EventStep && k >= 0 && k == steps-1 {
		ev.Phase = rollout.Succeeded
		done := ev
		done.Kind = rollout.EventSucceeded
		return []rollout.Event{done, ev}
	}
	return []rollout.Event{ev}
}
