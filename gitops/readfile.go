package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/canarydio/canaryd/rollout"
	"github.com/go-git/go-git/v5/plumbing/filemode"
)

// MaxManifestBytes is the default limit on a manifest's size. A VirtualService manifest is
// a few kilobytes; a file far larger is a mistake, and decoding it would cost every rollout
// of the repo time under the repo's lock.
const MaxManifestBytes = 4 << 20

// Errors of ReadManifest, for a file a spec names that canaryd refuses to read.
var (
	// ErrPath marks a path that is not a clean relative path inside the repo.
	ErrPath = errors.New("path outside the repo")
	// ErrMissing marks a path that names no file at the head.
	ErrMissing = errors.New("no such file")
	// ErrSymlink marks a path through a symbolic link, which canaryd never follows.
	ErrSymlink = errors.New("symbolic link")
	// ErrNotRegular marks a directory or a submodule where a file was expected.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge marks a file larger than the limit.
	ErrTooLarge = errors.New("file too large")
	// ErrBinary marks a file that is not text.
	ErrBinary = errors.New("binary file")
)

// CheckRepoPath reports whether name is a clean slash-separated path inside the repo:
// relative, without "." or ".." segments, without a leading or doubled slash.
func CheckRepoPath(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name || name == "." ||
		name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "\\") {
		return fmt.Errorf("%q: %w (write a clean path relative to the repo's root)", name, ErrPath)
	}
	return nil
}

// ReadManifest returns the file name at the branch head (as last fetched) and the head's
// commit. It refuses, with an error wrapping one of ErrPath, ErrMissing, ErrSymlink,
// ErrNotRegular, ErrTooLarge or ErrBinary, a path outside the repo, through or at a
// symbolic link (never followed), a file larger than limit bytes (checked before it is read)
// or a file with a NUL byte in its first 8000. It is safe for concurrent use.
func (r *Repo) ReadManifest(name string, limit int64) (data []byte, commit string, err error) {
	if err := CheckRepoPath(name); err != nil {
		return nil, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	head, err := r.head()
	if err != nil {
		return nil, "", err
	}
	blob, err := r.lookup(head.TreeHash, name)
	if err != nil {
		return nil, "", err
	}
	if data, err = r.readChecked(name, blob, limit); err != nil {
		return nil, "", err
	}
	return data, head.Hash.String(), nil
}

// readChecked reads a manifest's blob, refusing one over limit bytes or with a NUL byte in
// its first 8000. The caller holds the repo lock.
func (r *Repo) readChecked(name string, blob plumbing.Hash, limit int64) ([]byte, error) {
	obj, err := r.store.EncodedObject(plumbing.BlobObject, blob)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if obj.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d: %w", name, obj.Size(), limit, ErrTooLarge)
	}
	rd, err := obj.Reader()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer rd.Close()
	data, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrBinary)
	}
	return data, nil
}

// RouteWeights reads the weights doc's route holds in its manifest at the branch head (as
// last fetched), with ReadManifest's refusals, as a reload checks each rollout. A route is
// read once per version of its manifest: later calls for the same blob parse nothing. It
// is safe for concurrent use.
func (r *Repo) RouteWeights(doc *rollout.Document, limit int64) (rollout.Weights, error) {
	name := doc.Spec.Manifest
	if err := CheckRepoPath(name); err != nil {
		return rollout.Weights{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	head, err := r.head()
	if err != nil {
		return rollout.Weights{}, err
	}
	blob, err := r.lookup(head.TreeHash, name)
	if err != nil {
		return rollout.Weights{}, err
	}
	// The limit holds even for a blob a sync has parsed already (a NUL byte never parses).
	if size, err := r.store.EncodedObjectSize(blob); err != nil {
		return rollout.Weights{}, fmt.Errorf("%s: %w", name, err)
	} else if size > limit {
		return rollout.Weights{}, fmt.Errorf("%s is %d bytes, more than %d: %w", name, size, limit, ErrTooLarge)
	}
	return r.memoWeights(routeAt{blob: blob, ref: RefOf(doc)}, func() (*manifest, error) {
		if m, ok := r.parsed.get(blob); ok {
			return m, nil
		}
		data, err := r.readChecked(name, blob, limit)
		if err != nil {
			return nil, err
		}
		m, err := parseManifest(data)
		if err != nil {
			return nil, err
		}
		m.blob = blob
		r.parsed.put(blob, m, parsedSize(m))
		return m, nil
	})
}

// lookup walks tree to the blob at name, refusing symbolic links and non-files on the way.
// Trees come from the decoded-tree cache: a reload checks every rollout's manifest, and
// decoding a folder of 10,000 manifests once per check would cost rollouts squared.
func (r *Repo) lookup(tree plumbing.Hash, name string) (plumbing.Hash, error) {
	segs := strings.Split(name, "/")
	r.treesMu.Lock()
	defer r.treesMu.Unlock()
	for i, seg := range segs {
		t, err := r.tree(tree)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s: %w", name, err)
		}
		found, _ := t.FindEntry(seg)
		at := strings.Join(segs[:i+1], "/")
		switch {
		case found == nil:
			return plumbing.ZeroHash, fmt.Errorf("%s: %w at the head", name, ErrMissing)
		case found.Mode == filemode.Symlink:
			return plumbing.ZeroHash, fmt.Errorf("%s: %s is a %w; canaryd does not follow links", name, at, ErrSymlink)
		case i < len(segs)-1 && found.Mode != filemode.Dir:
			return plumbing.ZeroHash, fmt.Errorf("%s: %s is %w", name, at, ErrNotRegular)
		case i == len(segs)-1 && found.Mode != filemode.Regular && found.Mode != filemode.Executable:
			return plumbing.ZeroHash, fmt.Errorf("%s: %w", name, ErrNotRegular)
		}
		tree = found.Hash
	}
	return tree, nil
}
