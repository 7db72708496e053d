package gitops

import (
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// TestReadManifestRefuses: a person commits, with the git CLI, every kind of file a spec
// must not make canaryd read; each is refused with its own error, and a regular file reads.
func TestReadManifestRefuses(t *testing.T) {
	needGit(t)
	files := sampleFiles(t)
	files["deploy/binary.yaml"] = "kind: VirtualService\x00\x01\x02"
	files["deploy/big.yaml"] = "# " + strings.Repeat("x", 4000) + "\n"
	files["etc/passwd"] = "root:x:0:0\n"
	r := newRemote(t, files)
	work := personClone(t, r.url)
	if err := os.Symlink("sample/rules.yaml", filepath.Join(work, "deploy", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sample", filepath.Join(work, "deploy", "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(work, "deploy", "passwd.yaml")); err != nil {
		t.Fatal(err)
	}
	gitRun(t, work, "add", "-A")
	gitRun(t, work, "commit", "-q", "-m", "links")
	gitRun(t, work, "push", "-q", "origin", "HEAD:main")
	repo := openRepo(t, r.url, nil)

	tests := []struct {
		name string
		want error
	}{
		{"deploy/sample/rules.yaml", nil},
		{"../../etc/passwd", ErrPath},
		{"/etc/passwd", ErrPath},
		{"deploy/../etc/passwd", ErrPath},
		{"deploy//sample/rules.yaml", ErrPath},
		{"deploy/nope.yaml", ErrMissing},
		{"deploy/link.yaml", ErrSymlink},
		{"deploy/passwd.yaml", ErrSymlink},
		{"deploy/linkdir/rules.yaml", ErrSymlink},
		{"deploy/sample", ErrNotRegular},
		{"deploy/binary.yaml", ErrBinary},
		{"deploy/big.yaml", ErrTooLarge},
	}
	for _, tt := range tests {
		data, commit, err := repo.ReadManifest(tt.name, 3000)
		if !errors.Is(err, tt.want) {
			t.Errorf("ReadManifest(%q): err = %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err == nil && (len(data) == 0 || commit == "") {
			t.Errorf("ReadManifest(%q) = %d bytes at %q", tt.name, len(data), commit)
		}
		if err != nil && !strings.Contains(err.Error(), strings.TrimPrefix(tt.name, "/")) && tt.want != ErrPath {
			t.Errorf("ReadManifest(%q): error %q does not name the file", tt.name, err)
		}
		// A reload's check of a rollout's route refuses the same, and a route read once
		// (remembered by blob) is still refused past the limit.
		doc := parseDoc(t, sampleSpec)
		doc.Spec.Manifest = tt.name
		w, err := repo.RouteWeights(doc, 3000)
		if !errors.Is(err, tt.want) {
			t.Errorf("RouteWeights(%q): err = %v, want %v", tt.name, err, tt.want)
		}
		if tt.want == nil {
			if w != rollout.CanaryAt(0) {
				t.Errorf("RouteWeights(%q) = %s, want 100/0", tt.name, w)
			}
			if _, err := repo.RouteWeights(doc, 100); !errors.Is(err, ErrTooLarge) {
				t.Errorf("RouteWeights(%q) with a 100-byte limit after a read: %v, want ErrTooLarge", tt.name, err)
			}
		}
	}
}

// FuzzCheckRepoPath: a path CheckRepoPath accepts stays inside the repo however it is
// joined to the repo's root.
func FuzzCheckRepoPath(f *testing.F) {
	for _, s := range []string{"deploy/rules.yaml", "../../etc/passwd", "/etc/passwd", "a/../b", "a//b", ".", "a/./b", `a\..\b`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckRepoPath(name) != nil {
			return
		}
		joined := path.Join("/repo", name)
		if !strings.HasPrefix(joined, "/repo/") || path.Clean(name) != name || strings.HasPrefix(name, "/") {
			t.Fatalf("CheckRepoPath accepted %q, which joins to %q", name, joined)
		}
		for _, seg := range strings.Split(name, "/") {
			if seg == ".." || seg == "." || seg == "" {
				t.Fatalf("CheckRepoPath accepted %q with segment %q", name, seg)
			}
		}
	})
}
