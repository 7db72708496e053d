package gitops

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"
)

// Every fetch that brings something, and every push, adds a small pack to the cache. Past maxSmallPacks of
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
	merged, n, err := r.concatPacks(dir, dg, small)
	if err != nil {
		return err
	}
	// A pack that holds an object another merged pack holds too (the same manifest at the
	// same weights, a run later) cannot join them: git refuses a pack with an object twice.
	// Such packs are merged by encoding their objects again, once there are too many. That
	// reads through the cache, so every old pack is deleted only afterwards.
	var rest []plumbing.Hash
	for _, h := range small {
		if !slices.Contains(merged, h) {
			rest = append(rest, h)
		}
	}
	gone := merged
	if len(rest) > maxSmallPacks {
		if k, err := r.reencodePacks(dg, rest); err != nil {
			r.log.Warn("compact git cache: encode packs again", "packs", len(rest), "err", err)
		} else {
			gone, n = append(gone, rest...), n+k
		}
	}
	delErr := deletePacks(dg, gone)
	r.log.Debug("compacted git cache", "packs", len(gone), "objects", n)
	// The cache's index of packs is stale once any is gone: reopen it whatever happened.
	if err := r.closer.Close(); err != nil {
		return errors.Join(delErr, err)
	}
	if err := r.openCache(); err != nil {
		return errors.Join(delErr, err)
	}
	return delErr
}

// concatPacks writes the entries of packs, byte for byte, into one new pack with its index,
// and returns how many objects it holds. Nothing is inflated or compressed again: an
// OFS_DELTA's base is at the same distance in the new pack, and a REF_DELTA names its base,
// so every entry reads as before. (Encoding the objects again, with deltas searched
// anew, took 17 s for the packs of 30 batches of 1,000 steps, all under the repo lock.)
func (r *Repo) concatPacks(dir string, dg *dotgit.DotGit, packs []plumbing.Hash) (merged []plumbing.Hash, n int, err error) {
	type source struct {
		pack    plumbing.Hash
		entries []*idxfile.Entry
	}
	var srcs []source
	seen, count := map[plumbing.Hash]bool{}, 0
	for _, h := range packs {
		es, err := packEntries(dg, h)
		if err != nil {
			return nil, 0, err
		}
		if slices.ContainsFunc(es, func(e *idxfile.Entry) bool { return seen[e.Hash] }) {
			continue // left for reencodePacks
		}
		for _, e := range es {
			seen[e.Hash] = true
		}
		srcs = append(srcs, source{pack: h, entries: es})
		merged = append(merged, h)
		count += len(es)
	}
	if len(srcs) < 2 {
		return nil, 0, nil
	}
	packDir := filepath.Join(dir, "objects", "pack")
	tmp, err := os.CreateTemp(packDir, "tmp_pack_")
	if err != nil {
		return nil, 0, err
	}
	defer os.Remove(tmp.Name()) // once renamed, this removes nothing
	sum := sha1.New()
	out := io.MultiWriter(tmp, sum)
	var hdr [12]byte
	copy(hdr[:], "PACK")
	binary.BigEndian.PutUint32(hdr[4:], 2)
	binary.BigEndian.PutUint32(hdr[8:], uint32(count))
	if _, err := out.Write(hdr[:]); err != nil {
		tmp.Close()
		return nil, 0, err
	}
	var idx idxfile.Writer
	idx.OnHeader(uint32(count))
	at := int64(len(hdr))
	for _, src := range srcs {
		f, err := os.Open(filepath.Join(packDir, "pack-"+src.pack.String()+".pack"))
		if err != nil {
			tmp.Close()
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err == nil {
			// The entries lie between the 12-byte header and the 20-byte checksum.
			_, err = io.Copy(out, io.NewSectionReader(f, 12, fi.Size()-12-20))
		}
		f.Close()
		if err != nil {
			tmp.Close()
			return nil, 0, fmt.Errorf("merge pack %s: %w", src.pack, err)
		}
		for _, e := range src.entries {
			idx.Add(e.Hash, uint64(at+int64(e.Offset)-12), e.CRC32)
		}
		at += fi.Size() - 12 - 20
	}
	var checksum plumbing.Hash
	sum.Sum(checksum[:0])
	if _, err := tmp.Write(checksum[:]); err != nil {
		tmp.Close()
		return nil, 0, err
	}
	if err := tmp.Close(); err != nil {
		return nil, 0, err
	}
	if err := idx.OnFooter(checksum); err != nil {
		return nil, 0, err
	}
	mi, err := idx.Index()
	if err != nil {
		return nil, 0, err
	}
	var ib bytes.Buffer
	if _, err := idxfile.NewEncoder(&ib).Encode(mi); err != nil {
		return nil, 0, err
	}
	base := filepath.Join(packDir, "pack-"+checksum.String())
	if err := writeFileAtomic(packDir, base+".idx", ib.Bytes()); err != nil {
		return nil, 0, err
	}
	if err := os.Rename(tmp.Name(), base+".pack"); err != nil {
		return nil, 0, fmt.Errorf("install merged pack: %w", err)
	}
	return merged, count, nil
}

// packEntries lists the entries of one pack from its index.
func packEntries(dg *dotgit.DotGit, pack plumbing.Hash) ([]*idxfile.Entry, error) {
	f, err := dg.ObjectPackIdx(pack)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx := idxfile.NewMemoryIndex()
	if err := idxfile.NewDecoder(f).Decode(idx); err != nil {
		return nil, fmt.Errorf("index of pack %s: %w", pack, err)
	}
	it, err := idx.EntriesByOffset()
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var es []*idxfile.Entry
	for {
		e, err := it.Next()
		if errors.Is(err, io.EOF) {
			return es, nil
		}
		if err != nil {
			return nil, err
		}
		es = append(es, e)
	}
}

// deletePacks removes packs and their indexes from the cache.
func deletePacks(dg *dotgit.DotGit, packs []plumbing.Hash) error {
	for _, h := range packs {
		if err := dg.DeleteOldObjectPackAndIndex(h, time.Time{}); err != nil {
			return fmt.Errorf("delete pack %s: %w", h, err)
		}
	}
	return nil
}

// reencodePacks stores the objects of packs, read back whole, as one new pack with
// deltas searched anew, and returns how many objects it holds. It costs what encoding
// those objects costs; concatPacks is the cheap way.
func (r *Repo) reencodePacks(dg *dotgit.DotGit, packs []plumbing.Hash) (int, error) {
	seen := map[plumbing.Hash]bool{}
	var objs []plumbing.Hash
	for _, h := range packs {
		es, err := packEntries(dg, h)
		if err != nil {
			return 0, err
		}
		for _, e := range es {
			if !seen[e.Hash] {
				seen[e.Hash] = true
				objs = append(objs, e.Hash)
			}
		}
	}
	pw, ok := r.store.(storer.PackfileWriter)
	if !ok {
		return 0, errors.New("git cache cannot write packs")
	}
	w, err := pw.PackfileWriter()
	if err != nil {
		return 0, err
	}
	if _, err := packfile.NewEncoder(w, r.store, false).Encode(objs, 10); err != nil {
		w.Close()
		return 0, fmt.Errorf("write compacted pack: %w", err)
	}
	return len(objs), w.Close()
}
