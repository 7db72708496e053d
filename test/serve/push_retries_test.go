package serve_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// raceHook is a pre-receive hook of the world's bare remote: on the first push only, the
// git CLI commits on main as a person while canaryd's push waits for the ref lock, so the
// remote rejects canaryd's push (main moved) and canaryd must fetch and replay it.
const raceHook = `#!/bin/sh
marker="$GIT_DIR/raced"
[ -e "$marker" ] && exit 0
touch "$marker"
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
tree=$(git rev-parse main^{tree})
c=$(echo "docs: a person's commit" | GIT_AUTHOR_NAME="Pat Person" GIT_AUTHOR_EMAIL=pat@example.com GIT_COMMITTER_NAME="Pat Person" GIT_COMMITTER_EMAIL=pat@example.com git commit-tree -p main "$tree")
git update-ref refs/heads/main "$c"
echo "$c" > "$GIT_DIR/raced-commit"
`

var retriesRe = regexp.MustCompile(`(?m)^canaryd_git_push_retries_total (\S+)$`)

// TestServeCountsReplayedPush checks that canaryd_git_push_retries_total moves when a push
// is rejected because a person pushed first, and that the replayed commit lands on the
// person's (the git CLI reads the remote).
func TestServeCountsReplayedPush(t *testing.T) {
	w := newWorld(t)
	if err := os.WriteFile(filepath.Join(w.remote, "hooks", "pre-receive"), []byte(raceHook), 0o755); err != nil {
		t.Fatal(err)
	}
	w.serve()
	own := w.newestOwn(1, "canaryd's first commit")
	sha := strings.Fields(own)[0]
	raced, err := os.ReadFile(filepath.Join(w.remote, "raced-commit"))
	if err != nil {
		t.Fatalf("the person's racing commit was not made: %v", err)
	}
	if parent := w.git(w.remote, "rev-parse", sha+"^"); parent != strings.TrimSpace(string(raced)) {
		t.Errorf("canaryd's commit %s sits on %s, want on the person's commit that won the race %s", sha, parent, raced)
	}
	var value string
	w.eventually(10*time.Second, "canaryd_git_push_retries_total 1", func() (bool, string) {
		_, body := w.api("GET", "/metrics", "", nil)
		m := retriesRe.FindStringSubmatch(string(body))
		if m == nil {
			return false, "no canaryd_git_push_retries_total series"
		}
		value = m[1]
		return value == "1", "canaryd_git_push_retries_total " + value
	})
}
