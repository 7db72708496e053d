package gitops

import (
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"
)

// overlay keeps the objects of a batch's chain in memory, reading everything else from the
// cache: the chain is then packed once, pushed, and written to the cache as that one pack,
// instead of as thousands of loose objects compressed one by one.
type overlay struct {
	storer.EncodedObjectStorer // the cache, for reads
	mem                        *memory.ObjectStorage
	// base maps each tree and blob the chain wrote to the one it replaced at its path,
	// for packChain's deltas.
	base map[plumbing.Hash]plumbing.Hash
	// trees holds the chain's newest version of each tree it rewrote, so that the next
	// commit patches it in place instead of decoding the tree again.
	trees map[plumbing.Hash]*chainTree
}

func newOverlay(base storer.EncodedObjectStorer) *overlay {
	return &overlay{EncodedObjectStorer: base, mem: &memory.NewStorage().ObjectStorage,
		base: map[plumbing.Hash]plumbing.Hash{}, trees: map[plumbing.Hash]*chainTree{}}
}

// SetEncodedObject keeps obj in memory.
func (o *overlay) SetEncodedObject(obj plumbing.EncodedObject) (plumbing.Hash, error) {
	return o.mem.SetEncodedObject(obj)
}

// EncodedObject reads the chain's objects from memory, and the others from the cache.
func (o *overlay) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if obj, err := o.mem.EncodedObject(t, h); err == nil {
		return obj, nil
	}
	return o.EncodedObjectStorer.EncodedObject(t, h)
}

// HasEncodedObject looks in memory, then in the cache.
func (o *overlay) HasEncodedObject(h plumbing.Hash) error {
	if o.mem.HasEncodedObject(h) == nil {
		return nil
	}
	return o.EncodedObjectStorer.HasEncodedObject(h)
}

// EncodedObjectSize looks in memory, then in the cache.
func (o *overlay) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	if n, err := o.mem.EncodedObjectSize(h); err == nil {
		return n, nil
	}
	return o.EncodedObjectStorer.EncodedObjectSize(h)
}

// keep writes a pushed chain into the cache: as its pack, with the index the pack's writer
// knows, when the cache is on disk; else through the cache's pack writer; else object by
// object from the overlay.
func (r *Repo) keep(o *overlay, p *builtPack) error {
	if ri, ok := r.store.(interface{ Reindex() }); ok {
		err := p.install(r.cachePath())
		if err == nil {
			ri.Reindex()
			return nil
		}
		r.log.Warn("install pushed pack in the git cache; writing it through go-git", "err", err)
	}
	if pw, ok := r.store.(storer.PackfileWriter); ok {
		w, err := pw.PackfileWriter()
		if err == nil {
			_, err = w.Write(p.data)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		if err == nil {
			return nil
		}
		r.log.Warn("write pushed pack to the git cache; writing its objects one by one", "err", err)
	}
	for _, h := range p.hashes {
		obj, err := o.mem.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return fmt.Errorf("object %s of the pushed chain: %w", h, err)
		}
		if _, err := r.store.SetEncodedObject(obj); err != nil {
			return fmt.Errorf("store object %s of the pushed chain: %w", h, err)
		}
	}
	return nil
}
