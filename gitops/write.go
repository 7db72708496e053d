package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"

	"github.com/canarydio/canaryd/rollout"
)

// ErrRejected reports a push the remote refused every time it was replayed.
var ErrRejected = errors.New("push rejected")

// pushRejectedError is one push the remote refused because the branch moved.
type pushRejectedError struct{ status string }

func (e *pushRejectedError) Error() string { return "rejected: " + e.status }

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

// push sends pack and moves the branch from old to commit. The remote refuses if the
// branch is no longer at old: that is a *pushRejectedError. It never forces, and leaves
// the tracking ref to the caller.
func (r *Repo) push(ctx context.Context, sess transport.ReceivePackSession, old, commit plumbing.Hash, pack []byte) error {
	adv, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return r.redact(fmt.Errorf("push to %s: %w", r.cfg.URL, err))
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(adv.Capabilities)
	req.Commands = []*packp.Command{{Name: r.branch, Old: old, New: commit}}
	req.Packfile = io.NopCloser(bytes.NewReader(pack))
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
	return nil
}

// isRejection reports whether a push error means the branch moved under us, or that the
// remote lacks an object the push left out because the cache has it (see
// overlay.skipKnown): either way a replay, which sends everything, is the answer.
func isRejection(msg string) bool {
	for _, s := range []string{"non-fast-forward", "fetch first", "failed to lock", "incorrect old value",
		"failed to update ref", "cannot lock ref", "stale info", "failed to update", "missing necessary objects"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// fileEdit is a file a commit rewrites: its path (split) and its new content.
type fileEdit struct {
	file  string
	parts []string
	data  []byte
}

func newFileEdit(file string, data []byte) fileEdit {
	return fileEdit{file: file, parts: strings.Split(path.Clean(file), "/"), data: data}
}

// writeCommit stores the blob of each edit, the trees on their paths and a commit of them
// on parent (whose tree is tree), and returns the commit and its tree. Nothing else of the
// tree is read, and each rewritten tree is hashed once, however many of its files change.
func (r *Repo) writeCommit(st *overlay, parent, tree plumbing.Hash, edits []fileEdit, msg string) (commit, root plumbing.Hash, err error) {
	if root, err = r.replaceInTree(st, tree, edits); err != nil {
		return commit, root, err
	}
	if commit, err = r.storeCommit(st, parent, root, msg); err != nil {
		return commit, root, err
	}
	return commit, root, nil
}

// replaceInTree returns the hash of tree with each edit's file (below tree, at its parts)
// replaced by a blob of its data, storing the blobs and every rewritten tree in st's pack.
// Only entries' hashes change, so a tree is rewritten by patching them in its encoding; a
// tree the chain wrote is patched in place, and its delta is the span of bytes patched.
func (r *Repo) replaceInTree(st *overlay, tree plumbing.Hash, edits []fileEdit) (plumbing.Hash, error) {
	ct, fromChain := st.trees[tree]
	if fromChain {
		delete(st.trees, tree) // replaced below: the chain never reads this version again
	} else {
		var err error
		if ct, err = readChainTree(st, tree); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	var names []string
	below := map[string][]fileEdit{}
	for _, e := range edits {
		if _, ok := below[e.parts[0]]; !ok {
			names = append(names, e.parts[0])
		}
		below[e.parts[0]] = append(below[e.parts[0]], fileEdit{file: e.file, parts: e.parts[1:], data: e.data})
	}
	lo, hi := len(ct.data), 0
	for _, name := range names {
		es := below[name]
		slot, ok := ct.slots[name]
		if !ok {
			return plumbing.ZeroHash, fmt.Errorf("rewrite tree for %s: %s: %w", es[0].file, name, object.ErrFileNotFound)
		}
		var old, next plumbing.Hash
		copy(old[:], ct.data[slot.at:])
		var err error
		switch {
		case len(es[0].parts) == 0 && len(es) == 1:
			if !slot.mode.IsFile() {
				return plumbing.ZeroHash, fmt.Errorf("rewrite tree for %s: %s is not a file", es[0].file, name)
			}
			next, err = st.put(plumbing.BlobObject, es[0].data, old)
		case slices.ContainsFunc(es, func(e fileEdit) bool { return len(e.parts) == 0 }):
			return plumbing.ZeroHash, fmt.Errorf("rewrite tree for %s: %s is both a file and a directory, or written twice", es[0].file, name)
		case slot.mode != filemode.Dir:
			return plumbing.ZeroHash, fmt.Errorf("rewrite tree for %s: %s is not a directory", es[0].file, name)
		default:
			next, err = r.replaceInTree(st, old, es)
		}
		if err != nil {
			return plumbing.ZeroHash, err
		}
		copy(ct.data[slot.at:], next[:])
		lo, hi = min(lo, slot.at), max(hi, slot.at+len(next))
	}
	var h plumbing.Hash
	var err error
	if fromChain {
		h, err = st.putPatched(plumbing.TreeObject, ct.data, tree, lo, hi-lo)
	} else {
		h, err = st.put(plumbing.TreeObject, ct.data, plumbing.ZeroHash) // its base is in the cache, not the pack
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	st.trees[h] = ct
	return h, nil
}

// chainTree is a tree as the chain rewrites it: its encoding, and where each entry's hash
// sits in it (names, modes and offsets are the same in every version).
type chainTree struct {
	data  []byte
	slots map[string]treeSlot
}

type treeSlot struct {
	mode filemode.FileMode
	at   int // offset of the entry's hash in data
}

// readChainTree reads a tree's encoding (gitformat: "MODE NAME\0HASH" per entry) and
// where its entries' hashes are.
func readChainTree(st storer.EncodedObjectStorer, h plumbing.Hash) (*chainTree, error) {
	obj, err := st.EncodedObject(plumbing.TreeObject, h)
	if err != nil {
		return nil, err
	}
	data, err := readAll(obj)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", h, err)
	}
	ct := &chainTree{data: data, slots: map[string]treeSlot{}}
	for i := 0; i < len(data); {
		sp := bytes.IndexByte(data[i:], ' ')
		nul := bytes.IndexByte(data[i:], 0)
		if sp < 0 || nul < sp || i+nul+1+len(plumbing.ZeroHash) > len(data) {
			return nil, fmt.Errorf("tree %s: malformed entry at byte %d", h, i)
		}
		mode, err := filemode.New(string(data[i : i+sp]))
		if err != nil {
			return nil, fmt.Errorf("tree %s: entry at byte %d: %w", h, i, err)
		}
		at := i + nul + 1
		ct.slots[string(data[i+sp+1:i+nul])] = treeSlot{mode: mode, at: at}
		i = at + len(plumbing.ZeroHash)
	}
	return ct, nil
}

// storeCommit writes a commit of tree on parent, signed when a key is configured.
func (r *Repo) storeCommit(st storer.EncodedObjectStorer, parent, tree plumbing.Hash, msg string) (plumbing.Hash, error) {
	now := r.cfg.Now()
	c := &object.Commit{
		Author:       object.Signature{Name: r.cfg.Author.Name, Email: r.cfg.Author.Email, When: now},
		Committer:    object.Signature{Name: r.cfg.Committer.Name, Email: r.cfg.Committer.Email, When: now},
		Message:      msg,
		TreeHash:     tree,
		ParentHashes: []plumbing.Hash{parent},
	}
	if r.signer != nil {
		unsigned := st.NewEncodedObject()
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
	obj := st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}
