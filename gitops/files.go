package gitops

import (
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Files returns the files at the branch head (as last fetched by Open, SetWeights or Sync)
// whose paths match pattern, a slash-separated glob of path.Match segments such as
// "rollouts/*.yaml", keyed by path, and the head commit they were read from. Only the
// directories the pattern can reach are read. A malformed pattern is an error; no match
// is not.
func (r *Repo) Files(pattern string) (files map[string][]byte, commit string, err error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, "", fmt.Errorf("pattern %q: %w", pattern, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	head, err := r.head()
	if err != nil {
		return nil, "", err
	}
	files = map[string][]byte{}
	segs := strings.Split(strings.Trim(path.Clean(pattern), "/"), "/")
	if err := r.glob(head.TreeHash, "", segs, files); err != nil {
		return nil, "", fmt.Errorf("files %q at %.12s: %w", pattern, head.Hash, err)
	}
	return files, head.Hash.String(), nil
}

// glob adds the blobs below tree (at dir) that match segs to files.
func (r *Repo) glob(tree plumbing.Hash, dir string, segs []string, files map[string][]byte) error {
	t, err := object.GetTree(r.store, tree)
	if err != nil {
		return err
	}
	for _, e := range t.Entries {
		if ok, _ := path.Match(segs[0], e.Name); !ok {
			continue
		}
		p := path.Join(dir, e.Name)
		switch {
		case len(segs) > 1 && e.Mode == filemode.Dir:
			if err := r.glob(e.Hash, p, segs[1:], files); err != nil {
				return err
			}
		case len(segs) == 1 && e.Mode.IsFile():
			b, err := r.store.EncodedObject(plumbing.BlobObject, e.Hash)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			rd, err := b.Reader()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			data, err := io.ReadAll(rd)
			rd.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			files[p] = data
		}
	}
	return nil
}
