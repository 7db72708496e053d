package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"

	"github.com/canarydio/canaryd/rollout"
)

// ErrRejected reports a push the remote refused every time it was replayed.
var ErrRejected = errors.New("push rejected")

// pushRejectedError is one push the remote refused because the branch moved.
type pushRejectedError struct{ status string }

func (e *pushRejectedError) Error() string { return "rejected: " + e.status }

// SetWeights makes the branch head hold c.Weights for doc's VirtualService, in the manifest
// doc.Spec.Manifest, by one commit with c's message and trailers, and returns that commit.
// The write is a compare-and-swap on what the caller believes: when the head's weights are
// not c.Base, or the newest commit with the rollout's trailers is not c.BaseOwn, it writes
// nothing and returns a *rollout.ExternalChangeError saying what Git holds and who made it
// so. It is idempotent: when the newest commit with the rollout's trailers already is c's
// (same kind, run, step and weights, and the head holds its weights) — a retry after a
// crash, or another replica that made the same move — it returns that commit. A commit
// whose weights equal the head's (a hold, the start of a run) changes no file. A rejected
// push is fetched and the edit replayed on the new head, never forced, up to
// Config.MaxAttempts times. It keeps no belief of its own between calls.
func (r *Repo) SetWeights(ctx context.Context, doc *rollout.Document, c rollout.Commit) (string, error) {
	if err := r.mu.LockContext(ctx); err != nil {
		return "", fmt.Errorf("set %s in %s of %s: %w", c.Weights, doc.Spec.Manifest, r.url, err)
	}
	defer r.mu.Unlock()
	r.docs[doc.Name()] = doc
	var last error
	for attempt := 1; attempt <= r.cfg.MaxAttempts; attempt++ {
		commit, err := r.tryWrite(ctx, doc, c)
		var rej *pushRejectedError
		var ext *rollout.ExternalChangeError
		switch {
		case err == nil || errors.As(err, &ext):
			return commit, err
		case !errors.As(err, &rej):
			return "", fmt.Errorf("set %s in %s of %s: %w", c.Weights, doc.Spec.Manifest, r.url, err)
		}
		last = err
		if attempt < r.cfg.MaxAttempts && r.cfg.OnReplay != nil {
			r.cfg.OnReplay()
		}
		r.log.Debug("push rejected, replaying", "rollout", doc.Name(), "attempt", attempt, "remote", r.url, "status", rej.status)
		if err := r.backoff(ctx, attempt); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("push %s of %q to %s branch %s: %w after %d attempts: %w",
		doc.Spec.Manifest, doc.Name(), r.url, r.cfg.Branch, ErrRejected, r.cfg.MaxAttempts, last)
}

// backoff waits a jittered, exponentially growing time before attempt+1.
func (r *Repo) backoff(ctx context.Context, attempt int) error {
	d := r.cfg.Backoff << min(attempt-1, 6)
	d = d/2 + rand.N(d) // jitter: 0.5d..1.5d
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// tryWrite is one attempt, within Config.PushTimeout: bring the head up to date, check,
// edit, commit and push.
func (r *Repo) tryWrite(ctx context.Context, doc *rollout.Document, c rollout.Commit) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PushTimeout)
	defer cancel()
	sess, adv, err := r.openPush(ctx)
	if err != nil {
		return "", err
	}
	defer func() {
		if sess != nil {
			sess.Close()
		}
	}()
	head, err := r.head()
	if err != nil || head.Hash != adv {
		if err := r.fetch(ctx); err != nil {
			return "", err
		}
		if head, err = r.head(); err != nil {
			return "", err
		}
	}
	file := doc.Spec.Manifest
	out, done, err := r.edit(doc, head, c)
	if err != nil {
		return "", err
	}
	if done != "" {
		return done, nil
	}
	commit, objs, err := r.writeCommit(head, file, out, Message(doc, c))
	if err != nil {
		return "", err
	}
	if head.Hash != adv { // the remote moved while we fetched: ask it again
		sess.Close()
		if sess, adv, err = r.openPush(ctx); err != nil {
			return "", err
		}
		if adv != head.Hash {
			return "", &pushRejectedError{status: "branch moved"}
		}
	}
	if err := r.push(ctx, sess, head.Hash, commit, objs); err != nil {
		return "", err
	}
	if obj, err := object.GetCommit(r.store, commit); err == nil {
		rec := recordOf(doc, obj, trailers(obj.Message))
		r.newest[doc.Name()] = newest{head: commit, rec: &rec}
	}
	r.log.Info("pushed weights", "rollout", doc.Name(), "run", c.Run, "step", c.Step,
		"weight", c.Weights.Canary, "commit", commit.String(), "remote", r.url)
	return commit.String(), nil
}

// edit returns the manifest at head with c's weights, or the commit that already holds c
// (done). It returns an *rollout.ExternalChangeError when the head is not what c expects.
func (r *Repo) edit(doc *rollout.Document, head *object.Commit, c rollout.Commit) (out []byte, done string, err error) {
	file := doc.Spec.Manifest
	data, _, err := r.fileAt(head, file)
	if err != nil {
		return nil, "", fmt.Errorf("read %s from %s: %w", file, r.url, err)
	}
	ref := RefOf(doc)
	cur, err := ReadWeights(data, ref)
	if err != nil {
		return nil, "", fmt.Errorf("%s at %.12s: %w", file, head.Hash, err)
	}
	latest := r.latest(doc, head)
	if latest != nil && cur == c.Weights && isCommitOf(*latest, c) {
		return nil, latest.Commit, nil // written already: by us before a crash, or by a twin
	}
	own := ""
	if latest != nil {
		own = latest.Commit
	}
	if cur != c.Base || own != c.BaseOwn {
		ch, err := r.report(doc, head)
		if err != nil {
			return nil, "", err
		}
		return nil, "", &rollout.ExternalChangeError{Change: ch, File: file}
	}
	if cur == c.Weights {
		return data, "", nil // a hold, or a step that moves nothing: a commit that changes no file
	}
	if out, err = SetWeights(data, ref, c.Weights); err != nil {
		return nil, "", fmt.Errorf("%s at %.12s: %w", file, head.Hash, err)
	}
	return out, "", nil
}

// isCommitOf reports whether rec is the commit c describes.
func isCommitOf(rec rollout.Record, c rollout.Commit) bool {
	step := -1
	if c.Step > 0 {
		step = c.Step - 1
	}
	return rec.Matches(rollout.Move{Kind: c.Kind, Run: c.Run, Step: step, Weights: c.Weights})
}

// openPush opens a receive-pack session and returns the branch's hash on the remote.
func (r *Repo) openPush(ctx context.Context) (transport.ReceivePackSession, plumbing.Hash, error) {
	ep, err := transport.NewEndpoint(r.cfg.URL)
	if err != nil {
		return nil, plumbing.ZeroHash, r.redact(fmt.Errorf("remote %s: %w", r.cfg.URL, err))
	}
	ep.CaBundle = r.caCerts
	cl, err := client.NewClient(ep)
	if err != nil {
		return nil, plumbing.ZeroHash, r.redact(fmt.Errorf("remote %s: %w", r.cfg.URL, err))
	}
	sess, err := cl.NewReceivePackSession(ep, r.auth)
	if err != nil {
		return nil, plumbing.ZeroHash, r.redact(fmt.Errorf("push session to %s: %w", r.cfg.URL, err))
	}
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		sess.Close()
		return nil, plumbing.ZeroHash, r.redact(fmt.Errorf("list refs of %s: %w", r.cfg.URL, err))
	}
	h, ok := adv.References[r.branch.String()]
	if !ok {
		sess.Close()
		return nil, plumbing.ZeroHash, fmt.Errorf("branch %s not found at %s", r.cfg.Branch, r.url)
	}
	return sess, h, nil
}

// push sends the new objects and moves the branch from old to commit. The remote refuses
// if the branch is no longer at old: that is a *pushRejectedError. It never forces.
func (r *Repo) push(ctx context.Context, sess transport.ReceivePackSession, old, commit plumbing.Hash, objs []plumbing.Hash) error {
	var pack bytes.Buffer
	if _, err := packfile.NewEncoder(&pack, r.store, false).Encode(objs, 0); err != nil {
		return fmt.Errorf("pack commit %s: %w", commit, err)
	}
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return r.redact(fmt.Errorf("push to %s: %w", r.cfg.URL, err))
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(adv.Capabilities)
	req.Commands = []*packp.Command{{Name: r.branch, Old: old, New: commit}}
	req.Packfile = io.NopCloser(&pack)
	rs, err := sess.ReceivePack(ctx, req)
	if err != nil {
		if isRejection(err.Error()) {
			return &pushRejectedError{status: r.redact(err).Error()}
		}
		return r.redact(fmt.Errorf("push %s to %s: %w", commit, r.cfg.URL, err))
	}
	if rs != nil {
		if rs.UnpackStatus != "ok" {
			return r.redact(fmt.Errorf("push %s to %s: unpack: %s", commit, r.cfg.URL, rs.UnpackStatus))
		}
		for _, cs := range rs.CommandStatuses {
			if cs.Status != "ok" {
				return &pushRejectedError{status: r.redact(errors.New(cs.Status)).Error()}
			}
		}
	} else if !adv.Capabilities.Supports(capability.ReportStatus) {
		r.log.Debug("remote does not report push status", "remote", r.url)
	}
	return r.store.SetReference(plumbing.NewHashReference(r.track, commit))
}

// isRejection reports whether a push error means the branch moved under us.
func isRejection(msg string) bool {
	for _, s := range []string{"non-fast-forward", "fetch first", "failed to lock", "incorrect old value",
		"failed to update ref", "cannot lock ref", "stale info", "failed to update"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// writeCommit stores the blob of data at file, the trees on its path and a commit on top
// of head, and returns the commit with every new object. Nothing else of the tree is read.
func (r *Repo) writeCommit(head *object.Commit, file string, data []byte, msg string) (plumbing.Hash, []plumbing.Hash, error) {
	blob := r.store.NewEncodedObject()
	blob.SetType(plumbing.BlobObject)
	w, err := blob.Writer()
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, nil, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, nil, err
	}
	blobHash, err := r.store.SetEncodedObject(blob)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("store blob of %s: %w", file, err)
	}
	objs := []plumbing.Hash{blobHash}
	parts := strings.Split(path.Clean(file), "/")
	root, err := r.replaceInTree(head.TreeHash, parts, blobHash, &objs)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("rewrite tree for %s: %w", file, err)
	}
	commit, err := r.storeCommit(head.Hash, root, msg)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	return commit, append(objs, commit), nil
}

// replaceInTree returns the hash of tree with the file at parts replaced by blob, storing
// every rewritten tree and adding it to objs.
func (r *Repo) replaceInTree(tree plumbing.Hash, parts []string, blob plumbing.Hash, objs *[]plumbing.Hash) (plumbing.Hash, error) {
	t, err := object.GetTree(r.store, tree)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	entries := append([]object.TreeEntry(nil), t.Entries...)
	i := -1
	for j := range entries {
		if entries[j].Name == parts[0] {
			i = j
			break
		}
	}
	if i < 0 {
		return plumbing.ZeroHash, fmt.Errorf("%s: %w", parts[0], object.ErrFileNotFound)
	}
	if len(parts) == 1 {
		if !entries[i].Mode.IsFile() {
			return plumbing.ZeroHash, fmt.Errorf("%s is not a file", parts[0])
		}
		entries[i].Hash = blob
	} else {
		if entries[i].Mode != filemode.Dir {
			return plumbing.ZeroHash, fmt.Errorf("%s is not a directory", parts[0])
		}
		if entries[i].Hash, err = r.replaceInTree(entries[i].Hash, parts[1:], blob, objs); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	obj := r.store.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := r.store.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	*objs = append(*objs, h)
	return h, nil
}

// storeCommit writes a commit of tree on parent, signed when a key is configured.
func (r *Repo) storeCommit(parent, tree plumbing.Hash, msg string) (plumbing.Hash, error) {
	now := r.cfg.Now()
	c := &object.Commit{
		Author:       object.Signature{Name: r.cfg.Author.Name, Email: r.cfg.Author.Email, When: now},
		Committer:    object.Signature{Name: r.cfg.Committer.Name, Email: r.cfg.Committer.Email, When: now},
		Message:      msg,
		TreeHash:     tree,
		ParentHashes: []plumbing.Hash{parent},
	}
	if r.signer != nil {
		unsigned := r.store.NewEncodedObject()
		if err := c.EncodeWithoutSignature(unsigned); err != nil {
			return plumbing.ZeroHash, err
		}
		rd, err := unsigned.Reader()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		var sig bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&sig, r.signer, rd, nil); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("sign commit: %w", err)
		}
		c.PGPSignature = sig.String()
	}
	obj := r.store.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return r.store.SetEncodedObject(obj)
}
