package gitops

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// overlay writes the objects of a batch's chain straight into one pack as they are made,
// reading everything else from the cache: the pack is pushed and then installed in the
// cache as it is, instead of as thousands of loose objects compressed one by one. Of the
// chain's objects it keeps in memory only each path's newest version (the base of the
// next version's delta), not every version: a chain of 1,000 edits of a 1 MB manifest
// holds one copy of it, not a gigabyte.
type overlay struct {
	storer.EncodedObjectStorer // the cache, for reads
	pw                         *packWriter
	hashes                     []plumbing.Hash          // the pack's objects, in order
	at                         map[plumbing.Hash]int    // index of each in the pack
	latest                     map[plumbing.Hash][]byte // content of each path's newest version
	// trees holds the chain's newest version of each tree it rewrote, so that the next
	// commit patches it in place instead of decoding the tree again.
	trees map[plumbing.Hash]*chainTree
	// skipKnown leaves out of the pack the objects the cache has: the remote had each (the
	// cache holds only what was fetched from it or pushed to it), and a pack that repeats
	// an object (a manifest back at weights it held a run ago) can never be merged into
	// the cache's other packs cheaply. Should the remote have lost one (a force-push and
	// its gc), it refuses the push; the replay sends everything.
	skipKnown bool
}

func newOverlay(base storer.EncodedObjectStorer) *overlay {
	return &overlay{EncodedObjectStorer: base, pw: newPackWriter(), at: map[plumbing.Hash]int{},
		latest: map[plumbing.Hash][]byte{}, trees: map[plumbing.Hash]*chainTree{}}
}

// put adds an object of the chain to the pack, as a delta against base (the version it
// replaces at its path) when the chain wrote base, and keeps a blob's data (which the
// caller must not change) as the base of the next version. An object already in the pack
// is not added again.
func (o *overlay) put(typ plumbing.ObjectType, data []byte, base plumbing.Hash) (plumbing.Hash, error) {
	h := objectHash(typ, data)
	if o.has(h) {
		return h, nil
	}
	bi, bdata := -1, []byte(nil)
	if j, ok := o.at[base]; ok && base != h {
		if b, ok := o.latest[base]; ok {
			bi, bdata = j, b
			delete(o.latest, base) // a path's older version is no one's base again
		}
	}
	if err := o.pw.add(typ, data, bi, bdata); err != nil {
		return h, fmt.Errorf("pack %s %s: %w", typ, h, err)
	}
	o.at[h] = len(o.hashes)
	o.hashes = append(o.hashes, h)
	if typ == plumbing.BlobObject { // trees are rewritten through putPatched
		o.latest[h] = data
	}
	return h, nil
}

// putPatched adds a rewritten tree of the chain: data is the tree base as the chain wrote
// it, with the n bytes at offset at replaced (an entry's hash). Its delta is known without
// comparing, and data is not kept: the caller patches the same bytes for the next commit.
func (o *overlay) putPatched(typ plumbing.ObjectType, data []byte, base plumbing.Hash, at, n int) (plumbing.Hash, error) {
	h := objectHash(typ, data)
	if o.has(h) {
		return h, nil
	}
	bi := -1
	if j, ok := o.at[base]; ok && base != h {
		bi = j
	}
	if err := o.pw.addPatch(typ, data, bi, at, n); err != nil {
		return h, fmt.Errorf("pack %s %s: %w", typ, h, err)
	}
	o.at[h] = len(o.hashes)
	o.hashes = append(o.hashes, h)
	return h, nil
}

// has says whether h need not go into the pack: it is in it already, or in the cache.
func (o *overlay) has(h plumbing.Hash) bool {
	if _, ok := o.at[h]; ok {
		return true
	}
	return o.skipKnown && o.EncodedObjectStorer.HasEncodedObject(h) == nil
}

// objectHash is an object's name: the SHA-1 of "TYPE SIZE\x00" and its content. It uses
// crypto/sha1, twice as fast as the collision-detecting SHA-1 go-git names objects with,
// on content canaryd made itself (an edit of a manifest already in Git), where that makes
// the same name. Content built to collide would get a different name, which the remote's
// git, hashing everything it receives with collision detection, refuses: the push fails,
// and nothing wrong lands.
func objectHash(typ plumbing.ObjectType, data []byte) plumbing.Hash {
	h := sha1.New()
	h.Write(typ.Bytes())
	h.Write([]byte(" " + strconv.Itoa(len(data)) + "\x00"))
	h.Write(data)
	var sum plumbing.Hash
	h.Sum(sum[:0])
	return sum
}

// SetEncodedObject adds obj (a commit) to the pack, whole.
func (o *overlay) SetEncodedObject(obj plumbing.EncodedObject) (plumbing.Hash, error) {
	data, err := readAll(obj)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return o.put(obj.Type(), data, plumbing.ZeroHash)
}

// finish ends the pack.
func (o *overlay) finish() *builtPack {
	return &builtPack{data: o.pw.finish(), hashes: o.hashes, offsets: o.pw.offsets, crcs: o.pw.crcs}
}

// keep writes a pushed chain into the cache: as its pack, with the index the pack's writer
// knows, when the cache is on disk; else through the cache's pack writer.
func (r *Repo) keep(p *builtPack) error {
	if ri, ok := r.store.(interface{ Reindex() }); ok {
		err := p.install(r.cachePath())
		if err == nil {
			ri.Reindex()
			return nil
		}
		r.log.Warn("install pushed pack in the git cache; writing it through go-git", "err", err)
	}
	pw, ok := r.store.(storer.PackfileWriter)
	if !ok {
		return errors.New("the git cache takes no packs")
	}
	w, err := pw.PackfileWriter()
	if err != nil {
		return err
	}
	_, err = w.Write(p.data)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}
