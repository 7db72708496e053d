package gitops

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

// sneakyHook is a pre-receive hook that, on the first push only, lets a person's commit
// land on main while the push waits for its ref lock, so that receive-pack then refuses
// the push because main is no longer at the old value the client sent.
const sneakyHook = `#!/bin/sh
marker="$GIT_DIR/sneaky-done"
[ -e "$marker" ] && exit 0
touch "$marker"
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
tree=$(git rev-parse main^{tree})
c=$(echo "sneaky person" | GIT_AUTHOR_NAME=Sneaky GIT_AUTHOR_EMAIL=s@example.com GIT_COMMITTER_NAME=Sneaky GIT_COMMITTER_EMAIL=s@example.com git commit-tree -p main "$tree")
git update-ref refs/heads/main "$c"
echo "$c" > "$GIT_DIR/sneaky-commit"
`

func TestReplayOnServerRejection(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	hook := filepath.Join(rem.dir, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte(sneakyHook), 0o755); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, rem.url, nil)
	doc := parseDoc(t, sampleSpec)
	sha := step(t, r, doc, 1)
	sneaky, err := os.ReadFile(filepath.Join(rem.dir, "sneaky-commit"))
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	if parent := gitRun(t, rem.dir, "rev-parse", sha+"^"); parent != strings.TrimSpace(string(sneaky)) {
		t.Errorf("step 1's parent = %s, want the commit that won the race %s", parent, sneaky)
	}
	checkNothingLost(t, rem.dir, []string{sha, strings.TrimSpace(string(sneaky))}, 3)
	checkStepCommit(t, rem.dir, sha, 1, rollout.CanaryAt(20))
}

func TestRejectedEveryTimeNamesFileAndRemote(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	always := strings.Replace(sneakyHook, `[ -e "$marker" ] && exit 0`, "", 1) // the race is lost every time
	if err := os.WriteFile(filepath.Join(rem.dir, "hooks", "pre-receive"), []byte(always), 0o755); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, rem.url, func(c *Config) { c.MaxAttempts, c.Backoff = 3, time.Millisecond })
	doc := parseDoc(t, sampleSpec)
	_, err := r.SetWeights(ctxT(t), doc, believe(t, r, doc, rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3, Weights: rollout.CanaryAt(20)}))
	if err == nil {
		t.Fatal("SetWeights succeeded against a remote that declines every push")
	}
	for _, want := range []string{"deploy/sample/rules.yaml", rem.url, "3 attempts", "push rejected"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := len(strings.Fields(gitRun(t, rem.dir, "log", "--format=%an", "--author=canaryd", "main"))); n != 0 {
		t.Errorf("%d canaryd commits landed", n)
	}

	deny := "#!/bin/sh\necho 'policy: no pushes today' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(rem.dir, "hooks", "pre-receive"), []byte(deny), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = r.SetWeights(ctxT(t), doc, believe(t, r, doc, rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3, Weights: rollout.CanaryAt(20)}))
	if err == nil || !strings.Contains(err.Error(), "hook declined") || !strings.Contains(err.Error(), "deploy/sample/rules.yaml") {
		t.Errorf("SetWeights against a declining hook = %v, want the decline with the file", err)
	}
}

func TestWebhookTriggersSync(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	r := openRepo(t, rem.url, nil)
	doc := parseDoc(t, sampleSpec)
	r.Manage(doc)
	first, second := step(t, r, doc, 1), step(t, r, doc, 2)
	_ = first

	got := make(chan []rollout.GitChange, 4)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = r.Watch(ctx, time.Hour, func(chs []rollout.GitChange, err error) {
			if err != nil {
				t.Errorf("sync: %v", err)
			}
			got <- chs
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	work := personClone(t, rem.url)
	gitRun(t, work, "revert", "--no-edit", second)
	gitRun(t, work, "push", "-q", "origin", "main")
	revert := gitRun(t, work, "rev-parse", "HEAD")

	secret := []byte("s3")
	srv := httptest.NewServer(r.Webhook(secret))
	t.Cleanup(srv.Close)
	body := `{"ref":"refs/heads/main","after":"` + revert + `"}`
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(body))
	req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook status = %d", resp.StatusCode)
	}
	select {
	case chs := <-got:
		if len(chs) != 1 || chs[0].Commit != revert || chs[0].Cause != rollout.CauseRevert || chs[0].Reverts != second {
			t.Errorf("sync after the webhook = %+v, want the revert %s of %s", chs, revert, second)
		}
	case <-time.After(time.Minute):
		t.Fatal("the webhook did not trigger a sync")
	}
}

func TestShallowCache(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	work := personClone(t, rem.url)
	for i := range 5 {
		writeFile(t, work, "history.txt", strings.Repeat("x", i+1))
		gitRun(t, work, "add", "history.txt")
		gitRun(t, work, "commit", "-q", "-m", "history")
	}
	gitRun(t, work, "push", "-q", "origin", "main")
	r := openRepo(t, rem.url, func(c *Config) { c.Depth = 1 })
	doc := parseDoc(t, sampleSpec)
	shas := []string{step(t, r, doc, 1), step(t, r, doc, 2)}
	checkNothingLost(t, rem.dir, shas, 8)
	evs, err := r.History(ctxT(t), doc, 1)
	if err != nil || len(evs) != 1 || evs[0].Commit != shas[1] {
		t.Errorf("History(limit 1) = %+v, %v; want step 2 only", evs, err)
	}
}

func TestFiles(t *testing.T) {
	needGit(t)
	files := sampleFiles(t)
	files["rollouts/a.yaml"] = "a: 1\n"
	files["rollouts/b.yaml"] = "b: 2\n"
	files["rollouts/notes.txt"] = "not a spec\n"
	files["rollouts/sub/c.yaml"] = "c: 3\n"
	rem := newRemote(t, files)
	r := openRepo(t, rem.url, nil)
	got, commit, err := r.Files("rollouts/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"rollouts/a.yaml": []byte("a: 1\n"), "rollouts/b.yaml": []byte("b: 2\n")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if head := gitRun(t, rem.dir, "rev-parse", "main"); commit != head {
		t.Errorf("Files read %s, want the head %s", commit, head)
	}
	if _, _, err := r.Files("rollouts/[.yaml"); err == nil {
		t.Error("a malformed pattern was accepted")
	}
}

func TestOpenWhileRemoteIsDown(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	r := openRepo(t, rem.url, nil)
	doc := parseDoc(t, sampleSpec)
	sha := step(t, r, doc, 1)
	if err := os.Rename(rem.dir, rem.dir+".away"); err != nil {
		t.Fatal(err)
	}
	again := openRepo(t, rem.url, func(c *Config) { c.Dir = r.cfg.Dir })
	evs, err := again.History(ctxT(t), doc, 1)
	if err != nil || len(evs) != 1 || evs[0].Commit != sha {
		t.Errorf("History from the cache while the remote is down = %+v, %v", evs, err)
	}
	_, err = again.SetWeights(ctxT(t), doc, believe(t, again, doc, rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 2, Steps: 3, Weights: rollout.CanaryAt(60)}))
	if err == nil || !strings.Contains(err.Error(), rem.url) {
		t.Errorf("SetWeights while the remote is down = %v, want an error naming %s", err, rem.url)
	}
	if _, err := Open(ctxT(t), Config{URL: rem.url, Dir: t.TempDir()}); err == nil {
		t.Error("Open without a cache succeeded while the remote is down")
	}
}

func TestHTTPSWithTokenAndCABundle(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	base, ca := serveHTTPS(t, rem.root, "x-access-token", "ghp_token123")
	tok := writeFile(t, t.TempDir(), "token", "ghp_token123\n")
	url := base + "/deploy.git"
	r := openRepo(t, url, func(c *Config) { c.Auth = Auth{TokenFile: tok, CABundleFile: ca} })
	doc := parseDoc(t, sampleSpec)
	sha := step(t, r, doc, 1)
	checkStepCommit(t, rem.dir, sha, 1, rollout.CanaryAt(20))

	_, err := Open(ctxT(t), Config{URL: url, Dir: t.TempDir(), Auth: Auth{TokenFile: tok}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Open without the CA bundle = %v, want a certificate error", err)
	}
}

// TestCacheStaysCompact fetches many small pushes one by one, a person's and canaryd's in
// turn (canaryd's packs, with their deltas, go into the cache as canaryd wrote them): the
// cache's packs are merged and its open files stay bounded, it keeps working, and git
// fsck finds every pack and index whole.
func TestCacheStaysCompact(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	r := openRepo(t, rem.url, nil)
	doc := parseDoc(t, sampleSpec)
	r.Manage(doc)
	work := personClone(t, rem.url)
	fdsBefore := openFiles(t)
	for i := range 2*maxSmallPacks + 5 {
		step(t, r, doc, i%3+1)
		writeFile(t, work, "counter.txt", strconv.Itoa(i))
		gitRun(t, work, "add", "counter.txt")
		gitRun(t, work, "commit", "-q", "-m", "tick "+strconv.Itoa(i))
		gitRun(t, work, "pull", "-q", "--rebase", "origin", "main")
		gitRun(t, work, "push", "-q", "origin", "main")
		if _, err := r.Sync(ctxT(t)); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(r.cachePath(), "objects", "pack", "*.pack"))
	if len(packs) > maxSmallPacks+1 {
		t.Errorf("the cache holds %d packs, want at most %d", len(packs), maxSmallPacks+1)
	}
	if grew := openFiles(t) - fdsBefore; grew > maxOpenPacks {
		t.Errorf("open files grew by %d over %d fetches", grew, 2*maxSmallPacks+5)
	}
	files, _, err := r.Files("counter.txt")
	if err != nil || string(files["counter.txt"]) != strconv.Itoa(2*maxSmallPacks+4) {
		t.Errorf("counter.txt after compaction = %q, %v", files["counter.txt"], err)
	}
	sha := step(t, r, doc, 1)
	checkNothingLost(t, rem.dir, []string{sha}, 2*(2*maxSmallPacks+5)+2)
	if out, err := gitTry(r.cachePath(), "fsck", "--strict", "--no-progress", "--no-dangling"); err != nil || strings.Contains(out, "error") || strings.Contains(out, "missing") {
		t.Errorf("git fsck of the cache: %v\n%s", err, out)
	}
}

// openFiles counts the process's open file descriptors.
func openFiles(t *testing.T) int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count open files: %v", err)
	}
	return len(fds)
}

// TestRevertBeforeAnySyncSawTheStep has the manifest change and change back (canaryd's step,
// then a person's revert) between two Syncs: the manifest is byte for byte what the last
// Sync saw, yet the revert must be reported.
func TestRevertBeforeAnySyncSawTheStep(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	r := openRepo(t, rem.url, nil)
	doc := parseDoc(t, strings.Replace(sampleSpec, "[20, 60, 100]", "[0, 40, 100]", 1))
	r.Manage(doc)
	if _, err := r.Sync(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s2, err := r.SetWeights(ctxT(t), doc, believe(t, r, doc, rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 2, Steps: 3, Weights: rollout.CanaryAt(40)}))
	if err != nil {
		t.Fatal(err)
	}
	work := personClone(t, rem.url)
	gitRun(t, work, "revert", "--no-edit", s2)
	gitRun(t, work, "push", "-q", "origin", "main")
	revert := gitRun(t, work, "rev-parse", "HEAD")
	chs, err := r.Sync(ctxT(t))
	if err != nil || len(chs) != 1 || chs[0].Commit != revert || chs[0].Cause != rollout.CauseRevert || chs[0].Reverts != s2 {
		t.Errorf("Sync = %+v, %v; want the revert %s of %s", chs, err, revert, s2)
	}
}
