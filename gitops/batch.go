package gitops

import (
	"context"
	"errors"
	"fmt"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/canarydio/canaryd/rollout"
)

// pendingWrite is one SetWeights call waiting in the write queue for its batch.
type pendingWrite struct {
	ctx context.Context
	doc *rollout.Document
	c   rollout.Commit
	at  time.Time // when it was queued
	res chan writeResult
}

type writeResult struct {
	commit string
	err    error
}

// resolve hands the call its result; only the first result counts.
func (p *pendingWrite) resolve(commit string, err error) {
	select {
	case p.res <- writeResult{commit: commit, err: err}:
	default:
	}
}

// fail resolves the call with err, saying which write it was.
func (p *pendingWrite) fail(r *Repo, err error) {
	p.resolve("", fmt.Errorf("set %s in %s of %s: %w", p.c.Weights, p.doc.Spec.Manifest, r.url, err))
}

// SetWeights makes the branch head hold c.Weights for doc's VirtualService, in the manifest
// doc.Spec.Manifest, by one commit with c's message and trailers, and returns that commit.
// The write is a compare-and-swap on what the caller believes: when the head's weights are
// not c.Base, or the newest commit with the rollout's trailers is not c.BaseOwn, it writes
// nothing and returns a *rollout.ExternalChangeError saying what Git holds and who made it
// so. It is idempotent: when the newest commit with the rollout's trailers already is c's
// (same kind, run, step and weights, and the head holds its weights) — a retry after a
// crash, or another replica that made the same move — it returns that commit. A commit
// whose weights equal the head's (a hold, the start of a run) changes no file. It keeps no
// belief of its own between calls.
//
// Concurrent calls are written together: a call waits up to Config.BatchWindow for others
// (a batch that holds a rollback or an abort is written at once), and the batch becomes one
// commit per rollout, each on the one before, sent in one push. A call that is refused or
// already done drops out of its batch with its own result; the others go on. A rejected
// push is fetched and every edit of the batch replayed on the new head, never forced, up
// to Config.MaxAttempts times. SetWeights returns when its commit is pushed, or when ctx
// ends; a call whose ctx ended before its batch was built is left out of it.
func (r *Repo) SetWeights(ctx context.Context, doc *rollout.Document, c rollout.Commit) (string, error) {
	p := &pendingWrite{ctx: ctx, doc: doc, c: c, at: time.Now(), res: make(chan writeResult, 1)}
	r.enqueue(p)
	select {
	case res := <-p.res:
		return res.commit, res.err
	case <-ctx.Done():
		return "", fmt.Errorf("set %s in %s of %s: the git cache is busy with a fetch or a push: %w",
			c.Weights, doc.Spec.Manifest, r.url, ctx.Err())
	}
}

// enqueue queues p and starts the flusher when none runs.
func (r *Repo) enqueue(p *pendingWrite) {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	r.queue = append(r.queue, p)
	if p.c.Kind.Backward() {
		select {
		case r.urgent <- struct{}{}:
		default:
		}
	}
	if !r.flushing {
		r.flushing = true
		r.wg.Add(1)
		go r.flushLoop()
	}
}

// flushLoop writes batches until the queue is empty. It takes a batch only once it holds
// the repo lock: writes that come while a sync or a read holds it ride in the batch too.
func (r *Repo) flushLoop() {
	defer r.wg.Done()
	for {
		if !r.awaitBatch() {
			return
		}
		if r.awaited != nil {
			r.awaited()
		}
		err := r.mu.LockContext(r.bg)
		batch := r.take()
		if err != nil {
			for _, p := range batch {
				p.fail(r, err)
			}
			continue
		}
		if len(batch) > 0 {
			r.writeBatch(batch)
		}
		r.mu.Unlock()
	}
}

// awaitBatch waits until the oldest queued write has waited Config.BatchWindow, or a
// backward move is queued. While writes still arrive then (the newest is younger than a
// fifth of the window: a storm of rollouts on one tick, whose workers finish one after
// another), it gathers them for at most one more window, so that the
// storm's stragglers ride in this batch instead of waiting for it to be pushed and forming
// one of their own. A batch with a backward move is never held. It returns false, and the
// flusher ends, when the queue is empty.
func (r *Repo) awaitBatch() bool {
	var due time.Time // when the oldest write had waited its window
	for {
		r.qmu.Lock()
		if len(r.queue) == 0 {
			r.flushing = false
			r.qmu.Unlock()
			return false
		}
		now := time.Now()
		wait := r.cfg.BatchWindow - now.Sub(r.queue[0].at)
		urgent := slices.ContainsFunc(r.queue, func(p *pendingWrite) bool { return p.c.Kind.Backward() })
		if wait <= 0 && !urgent {
			if due.IsZero() {
				due = now
			}
			quiet := r.cfg.BatchWindow/5 - now.Sub(r.queue[len(r.queue)-1].at)
			wait = min(quiet, r.cfg.BatchWindow-now.Sub(due))
		}
		if wait <= 0 || urgent || r.bg.Err() != nil {
			r.qmu.Unlock()
			return true
		}
		r.qmu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.urgent:
		case <-r.bg.Done():
		}
		t.Stop()
	}
}

// take is takeLocked under qmu.
func (r *Repo) take() []*pendingWrite {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return r.takeLocked()
}

// takeLocked takes the queued writes of a batch, backward moves first: one per rollout
// (a second write of the same rollout waits for the next batch), leaving out those whose
// callers gave up. The caller holds qmu.
func (r *Repo) takeLocked() []*pendingWrite {
	seen := map[string]bool{}
	var batch, rest []*pendingWrite
	for _, p := range r.queue {
		switch {
		case p.ctx.Err() != nil:
			p.fail(r, p.ctx.Err())
		case seen[p.doc.Name()]:
			rest = append(rest, p)
		default:
			seen[p.doc.Name()] = true
			batch = append(batch, p)
		}
	}
	r.queue = rest
	slices.SortStableFunc(batch, func(a, b *pendingWrite) int {
		return boolInt(b.c.Kind.Backward()) - boolInt(a.c.Kind.Backward())
	})
	return batch
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeBatch writes a batch, replaying it on a rejected push, and resolves every write of
// it. The caller holds the repo lock.
func (r *Repo) writeBatch(batch []*pendingWrite) {
	live := batch
	var last error
	for attempt := 1; attempt <= r.cfg.MaxAttempts; attempt++ {
		var err error
		if live, err = r.tryBatch(r.bg, live, attempt == 1); err == nil {
			return
		}
		var rej *pushRejectedError
		if !errors.As(err, &rej) {
			for _, p := range live {
				p.fail(r, err)
			}
			return
		}
		last = err
		if attempt < r.cfg.MaxAttempts && r.cfg.OnReplay != nil {
			r.cfg.OnReplay()
		}
		r.log.Debug("push rejected, replaying", "writes", len(live), "attempt", attempt, "remote", r.url, "status", rej.status)
		if err := r.backoff(r.bg, attempt); err != nil {
			for _, p := range live {
				p.fail(r, err)
			}
			return
		}
	}
	for _, p := range live {
		p.resolve("", fmt.Errorf("push %s of %q to %s branch %s: %w after %d attempts: %w",
			p.doc.Spec.Manifest, p.doc.Name(), r.url, r.cfg.Branch, ErrRejected, r.cfg.MaxAttempts, last))
	}
}

// tryBatch is one attempt: bring the head up to date, check and edit every write, commit
// them in a chain and push it (with skipKnown, leaving out of the pack what the cache has;
// a replay sends everything). Asking the remote and fetching take at most
// Config.PushTimeout, and so does the push (building a long chain in between does not eat
// into it). It resolves the writes that are done, refused or pushed, and returns the others
// with the error that stopped them.
func (r *Repo) tryBatch(bg context.Context, items []*pendingWrite, skipKnown bool) ([]*pendingWrite, error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(bg, r.cfg.PushTimeout)
	defer cancel()
	sess, adv, err := r.openPush(ctx)
	if err != nil {
		return items, err
	}
	defer func() {
		if sess != nil {
			sess.Close()
		}
	}()
	head, err := r.head()
	if err != nil || head.Hash != adv {
		if err := r.fetch(ctx); err != nil {
			return items, err
		}
		if head, err = r.head(); err != nil {
			return items, err
		}
	}
	opened := time.Now()
	plan, live := r.planBatch(head, items)
	if len(plan) == 0 {
		return nil, nil
	}
	planned := time.Now()
	o := newOverlay(r.store)
	o.skipKnown = skipKnown
	groups := r.groupPlan(head, plan)
	plan = slices.Concat(groups...)
	tip, commits, err := r.chain(o, head, groups)
	if err != nil {
		return live, err
	}
	built := o.finish()
	chained := time.Now()
	// A push once begun ends by its deadline, never by Close: a file:// remote's receive-pack
	// is canaryd's child, and killing it inside its ref update would leave the branch
	// locked against every later push.
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(bg), r.cfg.PushTimeout)
	defer pcancel()
	if head.Hash != adv { // the remote moved while we fetched: ask it again
		sess.Close()
		if sess, adv, err = r.openPush(pctx); err != nil {
			return live, err
		}
		if adv != head.Hash {
			return live, &pushRejectedError{status: "branch moved"}
		}
	}
	if r.beforePush != nil {
		r.beforePush()
	}
	if err := r.push(pctx, sess, head.Hash, tip, built.data); err != nil {
		return live, err
	}
	first, last := items[0].at, items[0].at
	for _, p := range items {
		first, last = minTime(first, p.at), maxTime(last, p.at)
	}
	r.log.Debug("batch pushed", "writes", len(plan), "commits", len(groups), "bytes", len(built.data),
		"queued", first.Format(time.StampMilli), "waited", began.Sub(first), "spread", last.Sub(first),
		"open", opened.Sub(began), "plan", planned.Sub(opened), "chain", chained.Sub(planned),
		"push", time.Since(chained), "remote", r.url)
	if err := r.keep(built); err != nil {
		return live, err // pushed, yet not in the cache: the next try fetches it and finds the writes done
	}
	r.moveHead()
	if err := r.store.SetReference(plumbing.NewHashReference(r.track, tip)); err != nil {
		return live, err
	}
	r.afterPush(head.Hash, plan, commits)
	return nil, nil
}

// plannedWrite is one write of a batch that goes into the chain of commits.
type plannedWrite struct {
	p *pendingWrite
	m *manifest
	e routeEdit
}

// planBatch checks every write against head, reading each manifest once, and returns the
// writes to commit (and their calls). Writes that are done already, refused as an external
// change, or fail are resolved and left out.
func (r *Repo) planBatch(head *object.Commit, items []*pendingWrite) (plan []*plannedWrite, live []*pendingWrite) {
	for _, p := range items {
		r.docs[p.doc.Name()] = p.doc
	}
	r.latestAll(head)
	files, bad := r.manifestsAt(head, items)
	for _, p := range items {
		if p.ctx.Err() != nil {
			p.fail(r, p.ctx.Err())
			continue
		}
		m, err := files[p.doc.Spec.Manifest], bad[p.doc.Spec.Manifest]
		if err != nil {
			p.fail(r, err)
			continue
		}
		e, done, err := r.check(p.doc, head, m, p.c)
		var ext *rollout.ExternalChangeError
		switch {
		case errors.As(err, &ext):
			p.resolve("", err)
		case err != nil:
			p.fail(r, err)
		case done != "":
			p.resolve(done, nil)
		default:
			plan = append(plan, &plannedWrite{p: p, m: m, e: e})
		}
	}
	plan = r.verifyPlan(plan)
	for _, pw := range plan {
		live = append(live, pw.p)
	}
	return plan, live
}

// manifestsAt reads and parses, at head, the manifest of each write whose caller still
// waits (every write that planBatch goes on with), each file once, parsing on every CPU (a tick of thousands of rollouts with a file
// each parses thousands). A file that cannot be read or parsed is in bad instead.
func (r *Repo) manifestsAt(head *object.Commit, items []*pendingWrite) (files map[string]*manifest, bad map[string]error) {
	files, bad = map[string]*manifest{}, map[string]error{}
	type unparsed struct {
		file string
		blob plumbing.Hash
		data []byte
		m    *manifest
		err  error
	}
	var todo []*unparsed
	used := map[*manifest]bool{}
	for _, p := range items {
		file := p.doc.Spec.Manifest
		if _, ok := files[file]; ok || bad[file] != nil || p.ctx.Err() != nil {
			continue
		}
		h, err := r.entryAt(head.TreeHash, file)
		if err != nil {
			bad[file] = fmt.Errorf("read %s from %s: %s at %.12s: %w", file, r.url, file, head.Hash, err)
			continue
		}
		if m, ok := r.parsed.get(h); ok {
			if used[m] { // another file of the batch has the same bytes: edits of one must not land in the other
				m = &manifest{data: m.data, docs: m.docs, blob: m.blob}
			}
			used[m] = true
			files[file] = m
			continue
		}
		data, _, err := r.fileAt(head, file)
		if err != nil {
			bad[file] = fmt.Errorf("read %s from %s: %w", file, r.url, err)
			continue
		}
		files[file] = nil // being parsed
		todo = append(todo, &unparsed{file: file, blob: h, data: data})
	}
	parallel(len(todo), func(i int) { todo[i].m, todo[i].err = parseManifest(todo[i].data) })
	for _, u := range todo {
		if u.err != nil {
			delete(files, u.file)
			bad[u.file] = fmt.Errorf("read %s from %s: %s at %.12s: %w", u.file, r.url, u.file, head.Hash, u.err)
			continue
		}
		u.m.blob = u.blob
		files[u.file] = u.m
		r.parsed.put(u.blob, u.m, parsedSize(u.m))
	}
	return files, bad
}

// parallel calls fn for 0..n-1 on as many goroutines as there are CPUs, and returns when
// every call has.
func parallel(n int, fn func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// verifyPlan checks the edits of each manifest together, the manifests in parallel, and
// drops (failing them) those that do not pass.
func (r *Repo) verifyPlan(plan []*plannedWrite) []*plannedWrite {
	byFile := map[*manifest][]int{}
	var order []*manifest
	for i, pw := range plan {
		if _, ok := byFile[pw.m]; !ok {
			order = append(order, pw.m)
		}
		byFile[pw.m] = append(byFile[pw.m], i)
	}
	fails := make([]map[int]error, len(order))
	parallel(len(order), func(k int) { // each manifest is its own: nothing shared is written
		idx := byFile[order[k]]
		es := make([]routeEdit, len(idx))
		for j, i := range idx {
			es[j] = plan[i].e
		}
		fails[k] = order[k].verify(es)
	})
	drop := map[int]bool{}
	for k, m := range order {
		for j, err := range fails[k] {
			i := byFile[m][j]
			drop[i] = true
			plan[i].p.fail(r, err)
		}
	}
	var out []*plannedWrite
	for i, pw := range plan {
		if !drop[i] {
			out = append(out, pw)
		}
	}
	return out
}

// maxParsedBytes bounds the parsed-manifest cache by the estimated memory of the parsed
// nodes (parsedSize); when full, it evicts parses at random, but always keeps the manifest
// just parsed. It holds the parses of 10,000 small manifests, each carried from one
// version to the next by the batch that writes it (carryParses), so that a tick of 10,000
// rollouts parses none.
const maxParsedBytes = 128 << 20

// parsedSize estimates the memory of a parsed manifest: yaml nodes take about 24 times
// the bytes of the source (measured: 10.5 KB of heap for the sample's VirtualService of
// 454 bytes).
func parsedSize(m *manifest) int { return 24 * len(m.data) }

// parsedAt returns file at c, parsed. Manifests are cached by blob hash, so that a batch
// or a sync of many rollouts parses each manifest once, not once per rollout. The caller
// holds the repo lock.
func (r *Repo) parsedAt(c *object.Commit, file string) (*manifest, error) {
	h, err := r.entryAt(c.TreeHash, file)
	if err != nil {
		return nil, fmt.Errorf("%s at %.12s: %w", file, c.Hash, err)
	}
	if m, ok := r.parsed.get(h); ok {
		return m, nil
	}
	data, _, err := r.fileAt(c, file)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("%s at %.12s: %w", file, c.Hash, err)
	}
	m.blob = h
	r.parsed.put(h, m, parsedSize(m))
	return m, nil
}

// check returns the edit that makes m hold c's weights, or the commit that already holds c
// (done). It returns an *rollout.ExternalChangeError when the head is not what c expects.
func (r *Repo) check(doc *rollout.Document, head *object.Commit, m *manifest, c rollout.Commit) (e routeEdit, done string, err error) {
	file, ref := doc.Spec.Manifest, RefOf(doc)
	loc, cur, err := m.read(ref)
	if err != nil {
		return e, "", fmt.Errorf("%s at %.12s: %w", file, head.Hash, err)
	}
	latest := r.latest(doc, head)
	if latest != nil && cur == c.Weights && isCommitOf(*latest, c) {
		return e, latest.Commit, nil // written already: by us before a crash, or by a twin
	}
	own := ""
	if latest != nil {
		own = latest.Commit
	}
	if cur != c.Base || own != c.BaseOwn {
		ch, err := r.report(doc, head)
		if err != nil {
			return e, "", err
		}
		return e, "", &rollout.ExternalChangeError{Change: ch, File: file}
	}
	if e, err = m.edit(ref, loc, cur, c.Weights); err != nil {
		return e, "", fmt.Errorf("%s at %.12s: %w", file, head.Hash, err)
	}
	return e, "", nil
}

// groupPlan splits the plan into the commits of its chain: one commit per write, unless
// those commits would rewrite more than Config.ChainBytes of manifests and trees between
// them (a commit rewrites its whole manifest and every tree on its path, so a batch of N
// writes in a folder of N files, or in one manifest of N routes, costs N² to hash, here and
// on the server), or be more than maxChainCommits. Then the writes of one manifest share a
// commit, and when that is still too much, neighbouring manifests (in path order) do, in
// as many commits as the budget holds. Backward moves never share a commit with forward ones, and come first.
func (r *Repo) groupPlan(head *object.Commit, plan []*plannedWrite) [][]*plannedWrite {
	var back, fwd []*plannedWrite
	for _, pw := range plan {
		if pw.p.c.Kind.Backward() {
			back = append(back, pw)
		} else {
			fwd = append(fwd, pw)
		}
	}
	dirs := map[string]int{}
	var out [][]*plannedWrite
	for _, part := range [][]*plannedWrite{back, fwd} {
		out = append(out, r.group(head, part, dirs)...)
	}
	return out
}

// maxChainCommits bounds the commits of one direction in a push: each costs its commit, its
// trees and a line of the server's work, whatever its size.
const maxChainCommits = 1000

// group is groupPlan for writes of one direction; dirs remembers the trees' sizes.
func (r *Repo) group(head *object.Commit, part []*plannedWrite, dirs map[string]int) [][]*plannedWrite {
	byFile := map[string][]*plannedWrite{}
	cost := map[string]int{} // what a commit of the file rewrites
	var files []string
	each := 0
	for _, pw := range part {
		f := pw.p.doc.Spec.Manifest
		if _, ok := cost[f]; !ok {
			cost[f] = len(pw.m.data) + r.pathTreeBytes(head, f, dirs)
			files = append(files, f)
		}
		each += cost[f]
		byFile[f] = append(byFile[f], pw)
	}
	if each <= r.cfg.ChainBytes && len(part) <= maxChainCommits {
		out := make([][]*plannedWrite, len(part))
		for i, pw := range part {
			out[i] = []*plannedWrite{pw}
		}
		return out
	}
	slices.Sort(files)
	perFile := 0
	for _, f := range files {
		perFile += cost[f]
	}
	n := min(len(files), maxChainCommits)
	if perFile > r.cfg.ChainBytes { // a commit of several files costs about one's trees
		n = max(1, min(n, r.cfg.ChainBytes*len(files)/perFile))
	}
	out := make([][]*plannedWrite, 0, n)
	for i := range n {
		var g []*plannedWrite
		for _, f := range files[i*len(files)/n : (i+1)*len(files)/n] {
			g = append(g, byFile[f]...)
		}
		out = append(out, g)
	}
	return out
}

// pathTreeBytes is the size of the trees a commit of file rewrites (their encodings), by
// the decoded trees of head; dirs remembers it by folder.
func (r *Repo) pathTreeBytes(head *object.Commit, file string, dirs map[string]int) int {
	file = path.Clean(file)
	dir := path.Dir(file)
	if n, ok := dirs[dir]; ok {
		return n
	}
	r.treesMu.Lock()
	defer r.treesMu.Unlock()
	n, h := 0, head.TreeHash
	parts := strings.Split(file, "/")
	for _, part := range parts[:len(parts)-1] {
		t, err := r.tree(h)
		if err != nil {
			break
		}
		n += encodedTreeSize(t)
		e, err := t.FindEntry(part)
		if err != nil {
			break
		}
		h = e.Hash
	}
	if t, err := r.tree(h); err == nil {
		n += encodedTreeSize(t)
	}
	dirs[dir] = n
	return n
}

// encodedTreeSize is the size of a tree's encoding: "MODE NAME\0HASH" per entry.
func encodedTreeSize(t *object.Tree) int {
	n := 0
	for _, e := range t.Entries {
		n += len(e.Name) + 28
	}
	return n
}

// chain commits the planned writes, a commit per group, one on another from head, each
// with its manifests as the edits so far leave them, into st's pack, and returns the tip
// and each write's commit (in the groups' order).
func (r *Repo) chain(st *overlay, head *object.Commit, groups [][]*plannedWrite) (tip plumbing.Hash, commits []plumbing.Hash, err error) {
	tip, tree := head.Hash, head.TreeHash
	applied := map[*manifest][]routeEdit{}
	for _, g := range groups {
		moves := make([]moveOf, len(g))
		for i, pw := range g {
			applied[pw.m] = append(applied[pw.m], pw.e)
			moves[i] = moveOf{doc: pw.p.doc, c: pw.p.c}
		}
		var edits []fileEdit
		done := map[*manifest]bool{}
		for _, pw := range g {
			if !done[pw.m] {
				done[pw.m] = true
				edits = append(edits, newFileEdit(pw.p.doc.Spec.Manifest, pw.m.apply(applied[pw.m])))
			}
		}
		commit, root, err := r.writeCommit(st, tip, tree, edits, batchMessage(moves))
		if err != nil {
			return tip, nil, fmt.Errorf("commit %q: %w", g[0].p.doc.Name(), err)
		}
		for range g {
			commits = append(commits, commit)
		}
		tip, tree = commit, root
	}
	return tip, commits, nil
}

// afterPush records the pushed chain: each written rollout's newest commit is its own, and
// every other rollout's newest commit, cached at the old head, carries over to the new head
// (the chain holds no commit of theirs), so the next write walks no history. It then
// resolves each write with its commit.
func (r *Repo) afterPush(old plumbing.Hash, plan []*plannedWrite, commits []plumbing.Hash) {
	tip := commits[len(commits)-1]
	for n, c := range r.newest {
		if c.head == old {
			r.newest[n] = newest{head: tip, rec: c.rec}
		}
	}
	var tipTree plumbing.Hash
	if c, err := object.GetCommit(r.store, tip); err == nil {
		tipTree = c.TreeHash
	}
	objs := map[plumbing.Hash]*object.Commit{} // a commit that carries many writes is read once
	decoded := func(h plumbing.Hash) (*object.Commit, error) {
		if c, ok := objs[h]; ok {
			return c, nil
		}
		c, err := object.GetCommit(r.store, h)
		if err == nil {
			objs[h] = c
		}
		return c, err
	}
	for i, pw := range plan {
		name := pw.p.doc.Name()
		if h, err := r.entryAt(tipTree, pw.p.doc.Spec.Manifest); err == nil && !tipTree.IsZero() {
			// The next sync reports this route at the tip: its weights are the ones written
			// (verifyPlan read them back), with no parse.
			r.noteWeights(routeAt{blob: h, ref: RefOf(pw.p.doc)}, pw.p.c.Weights)
		}
		if obj, err := decoded(commits[i]); err == nil {
			t, _ := r.ownTrailers(obj, name)
			rec := recordOf(pw.p.doc, obj, t)
			r.newest[name] = newest{head: tip, rec: &rec}
		} else {
			delete(r.newest, name)
		}
		r.log.Info("pushed weights", "rollout", name, "run", pw.p.c.Run, "step", pw.p.c.Step,
			"weight", pw.p.c.Weights.Canary, "commit", commits[i].String(), "remote", r.url)
		pw.p.resolve(commits[i].String(), nil)
	}
	if !tipTree.IsZero() {
		r.carryParses(tipTree, plan)
	}
}

// carryParses caches the parse of each manifest the batch edited under its new blob (at
// tree, the pushed tip's), made from the parse before when the edits only swapped weight
// digits (manifest.advanced), so that the next batch of its rollouts, a tick later,
// parses nothing; the parse of the old blob is dropped. It never evicts others for
// that: a manifest that does not fit is parsed when next needed.
func (r *Repo) carryParses(tree plumbing.Hash, plan []*plannedWrite) {
	edits := map[*manifest][]routeEdit{}
	var order []*plannedWrite
	for _, pw := range plan {
		if len(pw.e.edits) == 0 {
			continue
		}
		if _, ok := edits[pw.m]; !ok {
			order = append(order, pw)
		}
		edits[pw.m] = append(edits[pw.m], pw.e)
	}
	for _, pw := range order {
		m, es := pw.m, edits[pw.m]
		if !m.onlySwapsDigits(es) {
			continue
		}
		h, err := r.entryAt(tree, pw.p.doc.Spec.Manifest)
		if err != nil {
			continue
		}
		next := m.advanced(es)
		if plumbing.ComputeHash(plumbing.BlobObject, next.data) != h {
			continue // not the bytes pushed (another write of the file in the chain): parse them when needed
		}
		next.blob = h
		if !m.blob.IsZero() {
			r.parsed.drop(m.blob)
		}
		r.parsed.putIfRoom(h, next, parsedSize(next))
	}
}
