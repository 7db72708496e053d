package gitops

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

// A chain of many commits rewrites the same trees (and, with one manifest for many
// rollouts, the same file) once per commit, each time changing a few bytes. Packed whole,
// a chain of 1,000 commits over a 1,000-file folder is 40 MB to compress on the way out
// and again on the way in; packed as deltas, each rewritten tree is the bytes that
// changed. The overlay writes the pack itself (format: gitformat-pack(5)) because go-git's
// encoder neither takes a known base nor a compression level.

// maxDeltaDepth bounds a chain of deltas, as git's pack.depth does (its default is 50):
// reading an object costs one patch per link.
const maxDeltaDepth = 50

// builtPack is a pack an overlay wrote, with what its index needs.
type builtPack struct {
	data    []byte
	hashes  []plumbing.Hash
	offsets []int
	crcs    []uint32
}

// readAll reads an object's content.
func readAll(obj plumbing.EncodedObject) ([]byte, error) {
	r, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data := make([]byte, obj.Size())
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	return data, nil
}

// packWriter writes a pack: header, objects, trailing SHA-1.
type packWriter struct {
	buf     bytes.Buffer
	offsets []int    // of each object's header in buf
	crcs    []uint32 // of each object's bytes in the pack, for the index
	depth   []int    // of each object's chain of deltas: 0 when whole
	zw      *zlib.Writer
	delta   []byte
}

func newPackWriter() *packWriter {
	pw := &packWriter{}
	pw.buf.WriteString("PACK")
	binary.Write(&pw.buf, binary.BigEndian, uint32(2))
	binary.Write(&pw.buf, binary.BigEndian, uint32(0))      // the count, set by finish
	pw.zw, _ = zlib.NewWriterLevel(&pw.buf, zlib.BestSpeed) // a valid level: no error
	return pw
}

// Pack object types (gitformat-pack(5)).
const (
	packOfsDelta = 6
)

// add appends an object: as a delta against the object at index base (whose content is
// baseData) when base >= 0 and the delta is smaller than half the object, else whole. An
// empty base is never used: go-git, which reads the pack into the cache, refuses it.
func (pw *packWriter) add(typ plumbing.ObjectType, data []byte, base int, baseData []byte) error {
	var delta []byte
	if pw.deltaOK(base) && len(baseData) > 0 {
		pw.delta = appendDelta(pw.delta[:0], baseData, data)
		delta = pw.delta
	}
	return pw.addDelta(typ, data, base, delta)
}

// addPatch appends data, which is the object at index base (of the same size) with the
// bytes at offset at replaced by data[at:at+n]: the delta is known without comparing, and
// the base's content need not be kept.
func (pw *packWriter) addPatch(typ plumbing.ObjectType, data []byte, base, at, n int) error {
	var delta []byte
	if pw.deltaOK(base) && len(data) > 0 {
		d := appendVarint(appendVarint(pw.delta[:0], len(data)), len(data))
		d = appendCopy(d, 0, at)
		d = appendInsert(d, data[at:at+n])
		pw.delta = appendCopy(d, at+n, len(data)-at-n)
		delta = pw.delta
	}
	return pw.addDelta(typ, data, base, delta)
}

// deltaOK says whether an object may be stored as a delta against the one at index base.
func (pw *packWriter) deltaOK(base int) bool {
	return base >= 0 && pw.depth[base] < maxDeltaDepth
}

// addDelta appends data as delta (against the object at index base) when there is one and
// it is smaller than half the object, else whole.
func (pw *packWriter) addDelta(typ plumbing.ObjectType, data []byte, base int, delta []byte) error {
	off := pw.buf.Len()
	pw.offsets = append(pw.offsets, off)
	var err error
	if delta != nil && len(delta) < len(data)/2 {
		pw.depth = append(pw.depth, pw.depth[base]+1)
		pw.header(packOfsDelta, len(delta))
		pw.ofs(off - pw.offsets[base])
		err = pw.deflate(delta)
	} else {
		pw.depth = append(pw.depth, 0)
		pw.header(int(typ), len(data))
		err = pw.deflate(data)
	}
	pw.crcs = append(pw.crcs, crc32.ChecksumIEEE(pw.buf.Bytes()[off:]))
	return err
}

// header writes an object's type and inflated size.
func (pw *packWriter) header(typ, size int) {
	c := byte(typ<<4) | byte(size&0x0f)
	size >>= 4
	for size > 0 {
		pw.buf.WriteByte(c | 0x80)
		c = byte(size & 0x7f)
		size >>= 7
	}
	pw.buf.WriteByte(c)
}

// ofs writes an OFS_DELTA's distance back to its base.
func (pw *packWriter) ofs(d int) {
	var b [10]byte
	i := len(b) - 1
	b[i] = byte(d & 0x7f)
	for d >>= 7; d > 0; d >>= 7 {
		d--
		i--
		b[i] = 0x80 | byte(d&0x7f)
	}
	pw.buf.Write(b[i:])
}

func (pw *packWriter) deflate(data []byte) error {
	pw.zw.Reset(&pw.buf)
	if _, err := pw.zw.Write(data); err != nil {
		return err
	}
	return pw.zw.Close()
}

// finish sets the pack's object count, appends its checksum and returns the pack.
func (pw *packWriter) finish() []byte {
	binary.BigEndian.PutUint32(pw.buf.Bytes()[8:12], uint32(len(pw.offsets)))
	sum := sha1.Sum(pw.buf.Bytes())
	pw.buf.Write(sum[:])
	return pw.buf.Bytes()
}

// appendDelta appends to d a delta (gitformat-pack(5), "Deltified representation") that
// makes target from base: the bytes both start with and end with are copied from base, the
// rest between is inserted. Rewritten trees and edited manifests differ in one place, where
// this is as small as a delta gets.
func appendDelta(d, base, target []byte) []byte {
	d = appendVarint(d, len(base))
	d = appendVarint(d, len(target))
	n := min(len(base), len(target))
	const block = 256 // compared with bytes.Equal first, then byte by byte
	pre := 0
	for pre+block <= n && bytes.Equal(base[pre:pre+block], target[pre:pre+block]) {
		pre += block
	}
	for pre < n && base[pre] == target[pre] {
		pre++
	}
	suf := 0
	for suf+block <= n-pre && bytes.Equal(base[len(base)-suf-block:len(base)-suf], target[len(target)-suf-block:len(target)-suf]) {
		suf += block
	}
	for suf < n-pre && base[len(base)-1-suf] == target[len(target)-1-suf] {
		suf++
	}
	d = appendCopy(d, 0, pre)
	d = appendInsert(d, target[pre:len(target)-suf])
	return appendCopy(d, len(base)-suf, suf)
}

// appendInsert appends insert instructions for b, 127 bytes at most each.
func appendInsert(d, b []byte) []byte {
	for len(b) > 0 {
		k := min(len(b), 0x7f)
		d = append(d, byte(k))
		d = append(d, b[:k]...)
		b = b[k:]
	}
	return d
}

// appendVarint appends a delta header's size: 7 bits a byte, least significant first.
func appendVarint(d []byte, v int) []byte {
	for v >= 0x80 {
		d = append(d, byte(v)|0x80)
		v >>= 7
	}
	return append(d, byte(v))
}

// appendCopy appends copy instructions for base[off:off+n], 64 KiB at most each.
func appendCopy(d []byte, off, n int) []byte {
	for n > 0 {
		k := min(n, 0xffff)
		at := len(d)
		d = append(d, 0x80)
		for i := range 4 {
			if b := byte(off >> (8 * i)); b != 0 {
				d[at] |= 1 << i
				d = append(d, b)
			}
		}
		for i := range 2 {
			if b := byte(k >> (8 * i)); b != 0 {
				d[at] |= 0x10 << i
				d = append(d, b)
			}
		}
		off += k
		n -= k
	}
	return d
}

// index encodes the pack's index (gitformat-pack(5), version 2) from the hashes, offsets
// and checksums the writer kept: the cache takes the pack without inflating it again.
func (p *builtPack) index() ([]byte, plumbing.Hash, error) {
	var sum plumbing.Hash
	copy(sum[:], p.data[len(p.data)-len(sum):])
	w := new(idxfile.Writer)
	w.OnHeader(uint32(len(p.hashes)))
	for i, h := range p.hashes {
		w.Add(h, uint64(p.offsets[i]), p.crcs[i])
	}
	if err := w.OnFooter(sum); err != nil {
		return nil, sum, err
	}
	idx, err := w.Index()
	if err != nil {
		return nil, sum, err
	}
	var buf bytes.Buffer
	if _, err := idxfile.NewEncoder(&buf).Encode(idx); err != nil {
		return nil, sum, err
	}
	return buf.Bytes(), sum, nil
}

// install writes the pack and its index into the cache's objects/pack folder: each to a
// temporary file first, the index renamed into place before the pack, since the cache
// lists packs by their .pack file and then opens the index.
func (p *builtPack) install(cache string) error {
	idx, sum, err := p.index()
	if err != nil {
		return fmt.Errorf("index the pushed pack: %w", err)
	}
	dir := filepath.Join(cache, "objects", "pack")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	base := filepath.Join(dir, "pack-"+sum.String())
	if err := writeFileAtomic(dir, base+".idx", idx); err != nil {
		return err
	}
	if err := writeFileAtomic(dir, base+".pack", p.data); err != nil {
		return err
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in dir and renames it to name.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "tmp_pack_")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("install %s: %w", filepath.Base(name), err)
	}
	return nil
}
