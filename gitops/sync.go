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

// explained caches the change that explains the weights at a head.
type explained struct {
	head   plumbing.Hash
	blob   plumbing.Hash // the manifest's blob at head
	change rollout.GitChange
}

// newest caches, per rollout, the newest commit with its trailers seen from a head. It is
// a fact about that head, not a belief: a different head is walked again (until it meets
// the cached head).
type newest struct {
	head plumbing.Hash
	rec  *rollout.Record
}

// latest returns the newest commit with doc's trailers on the first-parent path from head,
// or nil when there is none within Config.MaxWalk commits.
func (r *Repo) latest(doc *rollout.Document, head *object.Commit) *rollout.Record {
	name := doc.Name()
	cached, haveCache := r.newest[name]
	c := head
	var found *rollout.Record
	for n := 0; c != nil && n < r.cfg.MaxWalk; n++ {
		if haveCache && c.Hash == cached.head {
			found = cached.rec
			break
		}
		if t, own := r.ownTrailers(c, name); own {
			rec := recordOf(doc, c, t)
			found = &rec
			break
		}
		c = r.parent(c)
	}
	r.newest[name] = newest{head: head.Hash, rec: found}
	return found
}

// latestAll fills the newest-commit cache of every managed rollout not cached at head, in
// one walk back from head that stops once each has been found or its cached head is met,
// so that a report of N rollouts costs one walk, not N.
func (r *Repo) latestAll(head *object.Commit) {
	missing := map[string]*rollout.Document{}
	stops := map[plumbing.Hash][]string{} // cached heads, and whose
	for n, d := range r.docs {
		if c, ok := r.newest[n]; !ok || c.head != head.Hash {
			missing[n] = d
			if ok {
				stops[c.head] = append(stops[c.head], n)
			}
		}
	}
	if len(missing) < 2 {
		return // latest walks for one on its own
	}
	found := map[string]*rollout.Record{}
	done := map[string]bool{}
	c := head
	for n := 0; c != nil && n < r.cfg.MaxWalk && len(done) < len(missing); n++ {
		for _, name := range stops[c.Hash] {
			if !done[name] {
				found[name], done[name] = r.newest[name].rec, true
			}
		}
		owned(c.Message, func(name string, t map[string]string) {
			if d, ok := missing[name]; ok && !done[name] {
				rec := recordOf(d, c, t)
				found[name], done[name] = &rec, true
			}
		})
		c = r.parent(c)
	}
	for n := range missing {
		r.newest[n] = newest{head: head.Hash, rec: found[n]}
	}
}

// report is what Git says of doc at head: its weights, the commit that set them and why,
// and the newest commit with the rollout's trailers. When the head holds the weights of
// that newest commit, the commit is the explanation and nothing is walked.
func (r *Repo) report(doc *rollout.Document, head *object.Commit) (rollout.GitChange, error) {
	latest := r.latest(doc, head)
	if latest != nil {
		w, err := r.weightsAt(doc, head)
		if err != nil {
			return rollout.GitChange{}, fmt.Errorf("%s at %.12s: %w", doc.Spec.Manifest, head.Hash, err)
		}
		if w == latest.Weights {
			return rollout.GitChange{Rollout: doc.Name(), Weights: w, Commit: latest.Commit, Author: latest.Author,
				Time: latest.Time, Cause: rollout.CauseCanaryd, Latest: latest}, nil
		}
	}
	ch, err := r.explain(doc, head)
	if err != nil {
		return rollout.GitChange{}, err
	}
	ch.Latest = latest
	return ch, nil
}

// weightsAt reads doc's weights in commit c.
func (r *Repo) weightsAt(doc *rollout.Document, c *object.Commit) (rollout.Weights, error) {
	file, ref := doc.Spec.Manifest, RefOf(doc)
	h, err := r.entryAt(c.TreeHash, file)
	if err != nil {
		return rollout.Weights{}, fmt.Errorf("%s at %.12s: %w", file, c.Hash, err)
	}
	return r.memoWeights(routeAt{blob: h, ref: ref}, func() (*manifest, error) { return r.parsedAt(c, file) })
}

// memoWeights returns the weights of k's route in k's blob: remembered, or read from the
// manifest parse returns and remembered.
func (r *Repo) memoWeights(k routeAt, parse func() (*manifest, error)) (rollout.Weights, error) {
	if w, ok := r.routeWeights[k]; ok {
		return w, nil
	}
	m, err := parse()
	if err != nil {
		return rollout.Weights{}, err
	}
	_, w, err := m.read(k.ref)
	if err == nil {
		r.noteWeights(k, w)
	}
	return w, err
}

// noteWeights remembers the weights of a route in a blob, emptying the memo when full.
func (r *Repo) noteWeights(k routeAt, w rollout.Weights) {
	if len(r.routeWeights) >= maxRouteWeights {
		clear(r.routeWeights)
	}
	r.routeWeights[k] = w
}

// routeAt is a route in one version (blob) of a manifest.
type routeAt struct {
	blob plumbing.Hash
	ref  VSRef
}

// maxRouteWeights bounds Repo.routeWeights (about 200 bytes an entry).
const maxRouteWeights = 100000

// explain finds the newest commit (first parents from head) that changed doc's weights and
// says who made it and why.
func (r *Repo) explain(doc *rollout.Document, head *object.Commit) (rollout.GitChange, error) {
	name, file := doc.Name(), doc.Spec.Manifest
	prev, havePrev := r.changes[name]
	if havePrev && prev.head == head.Hash {
		return prev.change, nil
	}
	blob := r.blobAt(head, file)
	if havePrev && blob == prev.blob && blob != plumbing.ZeroHash && r.unchangedSince(head, prev.head, file) {
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
	if r.isOwn(c, name) {
		ch.Cause = rollout.CauseCanaryd
		return ch
	}
	if m := revertRe.FindStringSubmatch(c.Message); m != nil {
		if rc, err := object.GetCommit(r.store, plumbing.NewHash(m[1])); len(m[1]) < 40 || err == nil && r.isOwn(rc, name) {
			ch.Cause, ch.Reverts = rollout.CauseRevert, m[1]
			return ch
		}
	}
	if undone := r.restoredStep(doc, c); undone != "" {
		ch.Cause, ch.Reverts = rollout.CauseRevert, undone
	}
	return ch
}

func (r *Repo) isOwn(c *object.Commit, name string) bool {
	_, own := r.ownTrailers(c, name)
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
		if r.isOwn(p, name) {
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

// Sync fetches the branch and returns, for each managed rollout (sorted by name), what Git
// says of it at the new head: the weights, the commit that set them and why (canaryd's own
// commit by its trailers, a revert of one of canaryd's commits — "This reverts commit
// <sha>", or a manifest equal to an earlier step —, or a hand edit), and the newest commit
// with the rollout's trailers. It reports every rollout on every call and accepts
// nothing: deciding whether a report is news, and what it means, is the caller's. A
// rollout whose manifest cannot be read is left out and its error joined into the
// returned error.
func (r *Repo) Sync(ctx context.Context) ([]rollout.GitChange, error) {
	if err := r.mu.LockContext(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	if err := r.fetch(ctx); err != nil {
		return nil, err
	}
	return r.reportAll()
}

// Observe returns what Git says of doc at the head as last fetched, as Sync does, without
// fetching.
func (r *Repo) Observe(doc *rollout.Document) (rollout.GitChange, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	head, err := r.head()
	if err != nil {
		return rollout.GitChange{}, err
	}
	ch, err := r.report(doc, head)
	if err != nil {
		return rollout.GitChange{}, fmt.Errorf("rollout %q: %w", doc.Name(), err)
	}
	return ch, nil
}

func (r *Repo) reportAll() ([]rollout.GitChange, error) {
	head, err := r.head()
	if err != nil {
		return nil, err
	}
	r.latestAll(head)
	names := make([]string, 0, len(r.docs))
	for n := range r.docs {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []rollout.GitChange
	var errs []error
	for _, n := range names {
		ch, err := r.report(r.docs[n], head)
		if err != nil {
			errs = append(errs, fmt.Errorf("rollout %q: %w", n, err))
			continue
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
	if err := r.mu.LockContext(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	head, err := r.head()
	if err != nil {
		return nil, err
	}
	if r.history.byName[doc.Name()] == nil || r.history.head != head.Hash && !r.extendHistory(head) {
		if err := r.indexHistory(ctx, head, doc); err != nil {
			return nil, err
		}
	}
	evs := r.history.byName[doc.Name()]
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	return append([]rollout.Event(nil), evs...), nil
}

// historyIndex holds, for one head, the history of every managed rollout read in one walk:
// a new leader with an empty store asks for each of its rollouts', and a walk per rollout
// would cost rollouts × commits.
type historyIndex struct {
	head   plumbing.Hash
	byName map[string][]rollout.Event // newest first; an empty, non-nil slice when none
}

// indexHistory walks back from head once (at most Config.MaxWalk commits) and keeps the
// events of doc and of every managed rollout.
func (r *Repo) indexHistory(ctx context.Context, head *object.Commit, doc *rollout.Document) error {
	docs := map[string]*rollout.Document{doc.Name(): doc}
	for n, d := range r.docs {
		docs[n] = d
	}
	idx := historyIndex{head: head.Hash, byName: make(map[string][]rollout.Event, len(docs))}
	for n := range docs {
		idx.byName[n] = []rollout.Event{}
	}
	c := head
	for n := 0; c != nil && n < r.cfg.MaxWalk; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		owned(c.Message, func(name string, t map[string]string) {
			if d, ok := docs[name]; ok {
				idx.byName[name] = append(idx.byName[name], eventsOf(d, c, t)...)
			}
		})
		c = r.parent(c)
	}
	r.history = idx
	return nil
}

// extendHistory brings the history index from its head up to head by reading only the
// commits in between (a push of canaryd's own, or a fetch of a few), when head descends
// from the index's head within Config.MaxWalk commits; it reports whether it could.
func (r *Repo) extendHistory(head *object.Commit) bool {
	if r.history.byName == nil {
		return false
	}
	docs := map[string]*rollout.Document{}
	for n := range r.history.byName {
		if d, ok := r.docs[n]; ok {
			docs[n] = d
		}
	}
	fresh := map[string][]rollout.Event{}
	c := head
	for n := 0; c != nil && n < r.cfg.MaxWalk; n++ {
		if c.Hash == r.history.head {
			for name, evs := range fresh {
				r.history.byName[name] = append(evs, r.history.byName[name]...)
			}
			r.history.head = head.Hash
			return true
		}
		stale := false
		owned(c.Message, func(name string, t map[string]string) {
			if _, indexed := r.history.byName[name]; indexed {
				d := docs[name]
				if d == nil {
					stale = true // indexed for a document no longer managed: read again
					return
				}
				fresh[name] = append(fresh[name], eventsOf(d, c, t)...)
			}
		})
		if stale {
			return false
		}
		c = r.parent(c)
	}
	return false
}

// recordOf reads one commit with doc's trailers t. Its kind comes from the Rollout-Kind
// trailer, or from the subject for commits written before that trailer existed.
func recordOf(doc *rollout.Document, c *object.Commit, t map[string]string) rollout.Record {
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
	kind, ok := rollout.ParseTrailerKind(t[TrailerKind])
	if !ok {
		kind = kindOf(c.Message, doc.Name())
	}
	subj, ok := t[sentenceKey]
	if !ok {
		subj = sentenceOf(c.Message, doc.Name())
	}
	author := c.Author.Name
	if author == "" {
		author = c.Author.Email
	}
	// Cloned: a record outlives its commit, whose message a batch commit makes big.
	return rollout.Record{Commit: c.Hash.String(), Kind: kind, Run: run, Step: k, Steps: steps, Weights: w,
		Actor: strings.Clone(t[TrailerActor]), Reason: strings.Clone(t[TrailerReason]), Author: author,
		Time: c.Committer.When, Subject: strings.Clone(subj)}
}

// eventsOf turns one canaryd commit into history events, newest first.
func eventsOf(doc *rollout.Document, c *object.Commit, t map[string]string) []rollout.Event {
	rec := recordOf(doc, c, t)
	ev := rollout.Event{
		Time: rec.Time, Rollout: doc.Name(), Kind: rollout.EventStep, Run: rec.Run, Step: rec.Step,
		Weights: rec.Weights, Phase: rollout.Progressing, Commit: rec.Commit,
		Actor: rec.Actor, Reason: rec.Reason, Message: rec.Subject,
	}
	switch rec.Kind {
	case rollout.Rollback, rollout.Undo:
		ev.Kind, ev.Phase = rollout.EventRolledBack, rollout.RolledBack
	case rollout.Abort:
		ev.Kind, ev.Phase = rollout.EventAborted, rollout.Aborted
	case rollout.Pause:
		ev.Kind, ev.Phase = rollout.EventPaused, rollout.Paused
	case rollout.Resume:
		ev.Kind = rollout.EventResumed
	case rollout.Retry:
		ev.Kind = rollout.EventStarted
	}
	if ev.Kind == rollout.EventStep && rec.Step >= 0 && rec.Step == rec.Steps-1 {
		ev.Phase = rollout.Succeeded
		done := ev
		done.Kind = rollout.EventSucceeded
		return []rollout.Event{done, ev}
	}
	return []rollout.Event{ev}
}
