package gitops

import (
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
)

// Versions returns the distinct earlier contents of the file at name, newest first: the
// versions the branch's first-parent history held before the one at the head (as last
// fetched), looking back at most depth commits and returning at most `most` versions. A
// version larger than limit bytes, or a commit where the file is missing, is passed over.
// It reads only the local cache (no network) and is safe for concurrent use.
func (r *Repo) Versions(name string, depth, most int, limit int64) ([][]byte, error) {
	if err := CheckRepoPath(name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.head()
	if err != nil {
		return nil, err
	}
	seen := map[plumbing.Hash]bool{r.blobAt(c, name): true}
	var out [][]byte
	for i := 0; i < depth && len(out) < most; i++ {
		if c = r.parent(c); c == nil {
			break
		}
		h := r.blobAt(c, name)
		if h == plumbing.ZeroHash || seen[h] {
			continue
		}
		seen[h] = true
		data, err := r.versionBlob(h, limit)
		if err != nil {
			return out, fmt.Errorf("%s at %.12s: %w", name, c.Hash, err)
		}
		if data != nil {
			out = append(out, data)
		}
	}
	return out, nil
}

// versionBlob returns the blob h, or nil when it is larger than limit bytes.
func (r *Repo) versionBlob(h plumbing.Hash, limit int64) ([]byte, error) {
	obj, err := r.store.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	if obj.Size() > limit {
		return nil, nil
	}
	rd, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(io.LimitReader(rd, limit))
}
