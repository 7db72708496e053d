package gitops

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"
)

// Every fetch that brings something adds a small pack to the cache. Past maxSmallPacks of
// them (packs below smallPack bytes), compact merges them into one, so that lookups, which
// consult every pack, and open files stay bounded over months of polling. The big pack of
// the first clone is left alone: rewriting it would cost as much as a clone.
const (
	maxSmallPacks = 24
	smallPack     = 8 << 20
)

// compact merges the cache's small packs into one when there are too many, then reopens
// the cache. Its cost grows with the objects in the small packs only.
func (r *Repo) compact() error {
	dir := r.cachePath()
	dg := dotgit.New(osfs.New(dir))
	packs, err := dg.ObjectPacks()
	if err != nil {
		return err
	}
	var small []plumbing.Hash
	for _, h := range packs {
		fi, err := os.Stat(filepath.Join(dir, "objects", "pack", "pack-"+h.String()+".pack"))
		if err == nil && fi.Size() < smallPack {
			small = append(small, h)
		}
	}
	if len(small) <= maxSmallPacks {
		return nil
	}
	seen := map[plumbing.Hash]bool{}
	var objs []plumbing.Hash
	for _, h := range small {
		hs, err := packObjects(dg, h)
		if err != nil {
			return err
		}
		for _, o := range hs {
			if !seen[o] {
				seen[o] = true
				objs = append(objs, o)
			}
		}
	}
	if err := r.writePack(objs); err != nil {
		return err
	}
	for _, h := range small {
		if err := dg.DeleteOldObjectPackAndIndex(h, time.Time{}); err != nil {
			return fmt.Errorf("delete pack %s: %w", h, err)
		}
	}
	r.log.Debug("compacted git cache", "packs", len(small), "objects", len(objs))
	if err := r.closer.Close(); err != nil {
		return err
	}
	return r.openCache()
}

// packObjects lists the objects of one pack from its index.
func packObjects(dg *dotgit.DotGit, pack plumbing.Hash) ([]plumbing.Hash, error) {
	f, err := dg.ObjectPackIdx(pack)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(f).Decode(idx); err != nil {
		return nil, fmt.Errorf("index of pack %s: %w", pack, err)
	}
	it, err := idx.Entries()
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var hs []plumbing.Hash
	for {
		e, err := it.Next()
		if errors.Is(err, io.EOF) {
			return hs, nil
		}
		if err != nil {
			return nil, err
		}
		hs = append(hs, e.Hash)
	}
}

// writePack stores objs, read back whole, as one new self-contained pack.
func (r *Repo) writePack(objs []plumbing.Hash) error {
	pw, ok := r.store.(storer.PackfileWriter)
	if !ok {
		return errors.New("git cache cannot write packs")
	}
	w, err := pw.PackfileWriter()
	if err != nil {
		return err
	}
	if _, err := packfile.NewEncoder(w, r.store, false).Encode(objs, 10); err != nil {
		w.Close()
		return fmt.Errorf("write compacted pack: %w", err)
	}
	return w.Close()
}
