package gitops

import (
	"path"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// changedPaths holds, for one head, the files changed on the first-parent path back to
// each of some earlier heads: a sync explains the new commits once, by the files they
// changed, and each rollout then only asks whether its manifest is among them.
type changedPaths struct {
	head   plumbing.Hash
	byStop map[plumbing.Hash]map[string]bool // nil: the stop was not met within MaxWalk
}

// unchangedSince reports whether no commit on the first-parent path from head back to stop
// (a head explained before) changed file. A manifest changed and changed back (a revert of
// the step before) is byte for byte the same at both ends, yet its weights changed twice in
// between: each commit's own change counts. The caller holds the repo lock.
func (r *Repo) unchangedSince(head *object.Commit, stop plumbing.Hash, file string) bool {
	if r.changed.head != head.Hash {
		r.changed = changedPaths{head: head.Hash, byStop: map[plumbing.Hash]map[string]bool{}}
	}
	paths, ok := r.changed.byStop[stop]
	if !ok {
		paths = r.pathsSince(head, stop)
		r.changed.byStop[stop] = paths
	}
	return paths != nil && !paths[path.Clean(file)]
}

// pathsSince returns every file changed by the commits from head back to stop, or nil when
// stop is not met within Config.MaxWalk commits.
func (r *Repo) pathsSince(head *object.Commit, stop plumbing.Hash) map[string]bool {
	paths := map[string]bool{}
	c := head
	for n := 0; c != nil && n < r.cfg.MaxWalk; n++ {
		if c.Hash == stop {
			return paths
		}
		p := r.parent(c)
		parentTree := plumbing.ZeroHash
		if p != nil {
			parentTree = p.TreeHash
		}
		if err := r.diffTrees(parentTree, c.TreeHash, "", paths); err != nil {
			return nil
		}
		c = p
	}
	return nil
}

// diffTrees adds to paths every file that differs between trees a and b (the zero hash is
// the empty tree), below dir, reading only the subtrees that differ.
func (r *Repo) diffTrees(a, b plumbing.Hash, dir string, paths map[string]bool) error {
	if a == b {
		return nil
	}
	ea, err := r.treeEntries(a)
	if err != nil {
		return err
	}
	eb, err := r.treeEntries(b)
	if err != nil {
		return err
	}
	for name, x := range ea {
		y, ok := eb[name]
		if !ok {
			y = object.TreeEntry{Hash: plumbing.ZeroHash, Mode: x.Mode}
		}
		if err := r.diffEntry(x, y, path.Join(dir, name), paths); err != nil {
			return err
		}
	}
	for name, y := range eb {
		if _, ok := ea[name]; !ok {
			x := object.TreeEntry{Hash: plumbing.ZeroHash, Mode: y.Mode}
			if err := r.diffEntry(x, y, path.Join(dir, name), paths); err != nil {
				return err
			}
		}
	}
	return nil
}

// diffEntry compares one entry of two trees (a zero hash: absent).
func (r *Repo) diffEntry(x, y object.TreeEntry, p string, paths map[string]bool) error {
	if x.Hash == y.Hash && x.Mode == y.Mode {
		return nil
	}
	xDir, yDir := x.Mode == filemode.Dir, y.Mode == filemode.Dir
	switch {
	case xDir && yDir:
		return r.diffTrees(x.Hash, y.Hash, p, paths)
	case xDir:
		paths[p] = true
		return r.diffTrees(x.Hash, plumbing.ZeroHash, p, paths)
	case yDir:
		paths[p] = true
		return r.diffTrees(plumbing.ZeroHash, y.Hash, p, paths)
	}
	paths[p] = true
	return nil
}

// treeEntries returns the entries of tree h by name (none for the zero hash).
func (r *Repo) treeEntries(h plumbing.Hash) (map[string]object.TreeEntry, error) {
	if h == plumbing.ZeroHash {
		return nil, nil
	}
	r.treesMu.Lock()
	t, err := r.tree(h)
	r.treesMu.Unlock()
	if err != nil {
		return nil, err
	}
	m := make(map[string]object.TreeEntry, len(t.Entries))
	for _, e := range t.Entries {
		m[e.Name] = e
	}
	return m, nil
}
