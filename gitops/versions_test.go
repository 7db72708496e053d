package gitops

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestVersions: a person commits three versions of a file with the git CLI, one of them
// twice and one too large; Versions returns the distinct earlier ones, newest first.
func TestVersions(t *testing.T) {
	needGit(t)
	files := sampleFiles(t)
	files["rollouts/a.yaml"] = "v1\n"
	r := newRemote(t, files)
	work := personClone(t, r.url)
	for _, body := range []string{"v2\n", strings.Repeat("x", 200) + "\n", "v1\n", "v3\n"} {
		if err := os.WriteFile(filepath.Join(work, "rollouts", "a.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		gitRun(t, work, "commit", "-q", "-am", "edit a")
		if err := os.WriteFile(filepath.Join(work, "README.md"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		gitRun(t, work, "commit", "-q", "-am", "edit the readme")
	}
	gitRun(t, work, "push", "-q", "origin", "HEAD:main")
	repo := openRepo(t, r.url, nil)
	got, err := repo.Versions("rollouts/a.yaml", 100, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, v := range got {
		s = append(s, strings.TrimSpace(string(v)))
	}
	if want := []string{"v1", "v2"}; !slices.Equal(s, want) {
		t.Errorf("Versions = %q, want %q (distinct, newest first, the head's and the large one left out)", s, want)
	}
	if got, _ := repo.Versions("rollouts/a.yaml", 100, 1, 100); len(got) != 1 {
		t.Errorf("Versions with most 1 returned %d", len(got))
	}
	if got, _ := repo.Versions("rollouts/a.yaml", 1, 10, 100); len(got) != 0 {
		t.Errorf("Versions looking back 1 commit (the head's own version) returned %d", len(got))
	}
	if _, err := repo.Versions("../etc/passwd", 10, 10, 100); err == nil {
		t.Errorf("Versions of a path outside the repo: no error")
	}
}
