package gitops

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// step commits step k (1-based) of doc's plan.
func step(t testing.TB, r *Repo, doc *rollout.Document, k int) string {
	t.Helper()
	c := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: k, Steps: len(doc.Spec.Steps), Weights: doc.Spec.WeightsAt(k - 1)}
	sha, err := r.SetWeights(ctxT(t), doc, believe(t, r, doc, c))
	if err != nil {
		t.Fatalf("step %d: %v", k, err)
	}
	return sha
}

// believe returns c expecting what the cache, as last fetched, holds for doc: the belief
// of a controller that has seen everything up to the last fetch.
func believe(t testing.TB, r *Repo, doc *rollout.Document, c rollout.Commit) rollout.Commit {
	t.Helper()
	ch, err := r.Observe(doc)
	if err != nil {
		t.Fatalf("observe %s: %v", doc.Name(), err)
	}
	c.Base, c.BaseOwn = ch.Weights, ch.LatestCommit()
	return c
}

var weightLine = regexp.MustCompile(`^[+-]\s+weight: \d+$`)

func TestThreeSteps(t *testing.T) {
	needGit(t)
	for _, signed := range []bool{false, true} {
		t.Run(map[bool]string{false: "unsigned", true: "signed"}[signed], func(t *testing.T) {
			rem := newRemote(t, sampleFiles(t))
			var gnupg string
			r := openRepo(t, rem.url, func(c *Config) {
				if signed {
					c.SigningKeyFile, gnupg = signingKey(t)
				}
			})
			doc := parseDoc(t, sampleSpec)
			var shas []string
			for k := 1; k <= 3; k++ {
				shas = append(shas, step(t, r, doc, k))
			}
			if again := step(t, r, doc, 3); again != shas[2] {
				t.Errorf("repeating step 3 committed %s, want the head %s", again, shas[2])
			}
			log := gitRun(t, rem.dir, "log", "--format=%H", "main")
			if got := strings.Fields(log); len(got) != 4 || got[0] != shas[2] {
				t.Fatalf("git log = %v, want 3 commits on the seed ending at %s", got, shas[2])
			}
			for k, sha := range shas {
				checkStepCommit(t, rem.dir, sha, k+1, doc.Spec.WeightsAt(k))
			}
			if out, err := gitTry(rem.dir, "fsck", "--strict", "--no-progress", "--no-dangling"); err != nil || out != "" {
				t.Errorf("git fsck --strict: %v\n%s", err, out)
			}
			if signed {
				verifyCommit(t, rem.dir, gnupg, shas...)
			}
			evs, err := r.History(ctxT(t), doc, 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range evs {
				got = append(got, string(ev.Kind)+" "+ev.Weights.String()+" "+ev.Commit[:7])
			}
			want := []string{"succeeded 0/100 " + shas[2][:7], "step 0/100 " + shas[2][:7], "step 40/60 " + shas[1][:7], "step 80/20 " + shas[0][:7]}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("History (-want +got):\n%s", diff)
			}
		})
	}
}

// checkStepCommit checks a step commit's trailers and that its diff holds only weights.
func checkStepCommit(t *testing.T, dir, sha string, k int, w rollout.Weights) {
	t.Helper()
	msg := gitRun(t, dir, "log", "-1", "--format=%B", sha)
	cmd := exec.Command("git", "interpret-trailers", "--parse")
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	wantTrailers := "Rollout: grpc-helloworld-py\nRollout-Kind: step\nRollout-Run: 1\nRollout-Step: " +
		itoa(k) + "/3\nRollout-Weights: v1=" + itoa(w.Stable) + ",v2=" + itoa(w.Canary) + "\n"
	if diff := cmp.Diff(wantTrailers, string(out)); diff != "" {
		t.Errorf("trailers of step %d (-want +got):\n%s", k, diff)
	}
	if subj, _, _ := strings.Cut(msg, "\n"); subj != "grpc-helloworld-py: step "+itoa(k)+"/3, canary v2 at "+itoa(w.Canary)+"%" {
		t.Errorf("subject of step %d = %q", k, subj)
	}
	diff := gitRun(t, dir, "diff", "-U0", sha+"^", sha)
	changed := 0
	for _, line := range strings.Split(diff, "\n") {
		if strings.HasPrefix(line, "+++") || strings.HasPrefix(line, "---") ||
			!(strings.HasPrefix(line, "+") || strings.HasPrefix(line, "-")) {
			continue
		}
		changed++
		if !weightLine.MatchString(line) {
			t.Errorf("step %d changed a line that is not a weight: %q", k, line)
		}
	}
	if files := gitRun(t, dir, "diff", "--name-only", sha+"^", sha); files != "deploy/sample/rules.yaml" || changed == 0 {
		t.Errorf("step %d changed files %q, %d lines", k, files, changed)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// signingKey writes a fresh OpenPGP key for canaryd and imports its public half into a
// throwaway GNUPGHOME, whose agent is stopped at cleanup.
func signingKey(t *testing.T) (keyFile, gnupgHome string) {
	t.Helper()
	e, err := openpgp.NewEntity("canaryd test", "", "canaryd@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var priv, pub bytes.Buffer
	w, _ := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, _ = armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	keyFile = writeFile(t, dir, "key.asc", priv.String())
	pubFile := writeFile(t, dir, "pub.asc", pub.String())
	gnupgHome, err = os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kill := exec.Command("gpgconf", "--kill", "all")
		kill.Env = append(os.Environ(), "GNUPGHOME="+gnupgHome)
		_ = kill.Run()
		os.RemoveAll(gnupgHome)
	})
	if err := os.Chmod(gnupgHome, 0o700); err != nil {
		t.Fatal(err)
	}
	imp := exec.Command("gpg", "--batch", "--import", pubFile)
	imp.Env = append(os.Environ(), "GNUPGHOME="+gnupgHome)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	return keyFile, gnupgHome
}

// verifyCommit runs git verify-commit on each sha with the imported public key.
func verifyCommit(t *testing.T, dir, gnupgHome string, shas ...string) {
	t.Helper()
	for _, sha := range shas {
		cmd := exec.Command("git", "verify-commit", "-v", sha)
		cmd.Dir = dir
		cmd.Env = append(gitEnv(filepath.Dir(dir)), "GNUPGHOME="+gnupgHome)
		if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("Good signature")) {
			t.Errorf("git verify-commit %s: %v\n%s", sha, err, out)
		}
	}
}

func TestReplayOnForeignPush(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	r := openRepo(t, rem.url, nil)
	doc := parseDoc(t, sampleSpec)
	first := step(t, r, doc, 1)

	work := personClone(t, rem.url)
	writeFile(t, work, "NOTES.md", "an unrelated change\n")
	gitRun(t, work, "add", "NOTES.md")
	gitRun(t, work, "commit", "-q", "-m", "docs: notes")
	gitRun(t, work, "push", "-q", "origin", "main")
	theirs := gitRun(t, work, "rev-parse", "HEAD")

	second := step(t, r, doc, 2)
	got := strings.Fields(gitRun(t, rem.dir, "log", "--format=%H", "main"))
	if len(got) != 4 || got[0] != second || got[1] != theirs || got[2] != first {
		t.Fatalf("history = %v, want [step2 %s, theirs %s, step1 %s, seed]", got, second, theirs, first)
	}
	if merges := gitRun(t, rem.dir, "rev-list", "--merges", "main"); merges != "" {
		t.Errorf("history is not linear: merges %s", merges)
	}
	if body := gitRun(t, rem.dir, "show", "main:NOTES.md"); body != "an unrelated change" {
		t.Errorf("the person's file = %q", body)
	}
	checkStepCommit(t, rem.dir, second, 2, rollout.CanaryAt(60))
}

func TestRevertIsReported(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	r := openRepo(t, rem.url, nil)
	doc := parseDoc(t, sampleSpec)
	r.Manage(doc)
	step(t, r, doc, 1)
	second := step(t, r, doc, 2)

	changes, err := r.Sync(ctxT(t))
	if err != nil || len(changes) != 1 || changes[0].Cause != rollout.CauseCanaryd || changes[0].Commit != second {
		t.Fatalf("Sync before the revert = %+v, %v; want canaryd's %s", changes, err, second)
	}
	work := personClone(t, rem.url)
	gitRun(t, work, "revert", "--no-edit", second)
	gitRun(t, work, "push", "-q", "origin", "main")
	revert := gitRun(t, work, "rev-parse", "HEAD")
	when := gitRun(t, work, "log", "-1", "--format=%aI")

	changes, err = r.Sync(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	at, _ := time.Parse(time.RFC3339, when)
	want := []rollout.GitChange{{
		Rollout: "grpc-helloworld-py", Weights: rollout.CanaryAt(20), Commit: revert,
		Author: "Alice Person", Time: at, Cause: rollout.CauseRevert, Reverts: second,
	}}
	if len(changes) != 1 || changes[0].LatestCommit() != second {
		t.Fatalf("Sync after the revert = %+v; want the newest canaryd commit %s named", changes, second)
	}
	changes[0].Latest = nil
	if diff := cmp.Diff(want, changes, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("Sync after the revert (-want +got):\n%s", diff)
	}
	// Sync accepts nothing: it says what Git holds every time, also after a restart.
	restarted := openRepo(t, rem.url, func(cfg *Config) { cfg.Dir = r.cfg.Dir })
	restarted.Manage(doc)
	for _, rr := range []*Repo{r, restarted} {
		if again, err := rr.Sync(ctxT(t)); err != nil || len(again) != 1 || again[0].Commit != revert || again[0].LatestCommit() != second {
			t.Errorf("Sync again reported %+v, %v; want the revert again", again, err)
		}
	}
	// A write that still believes step 2 is at the head is refused: the revert wins.
	c3 := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 3, Steps: 3, Weights: rollout.CanaryAt(100),
		Base: rollout.CanaryAt(60), BaseOwn: second}
	var ext *rollout.ExternalChangeError
	if _, err := r.SetWeights(ctxT(t), doc, c3); !errors.As(err, &ext) || ext.Change.Commit != revert {
		t.Fatalf("a write over the revert = %v, want an ExternalChangeError naming %s", err, revert)
	}
	// Once the controller accepted the revert (and was resumed), it writes on top of it.
	c3.Base = rollout.CanaryAt(20)
	third, err := r.SetWeights(ctxT(t), doc, c3)
	if err != nil {
		t.Fatal(err)
	}
	if own, err := r.Sync(ctxT(t)); err != nil || len(own) != 1 || own[0].Commit != third || !own[0].Own() || own[0].LatestCommit() != third {
		t.Errorf("Sync after step 3 = %+v, %v; want canaryd's %s", own, err, third)
	}
	if parent := gitRun(t, rem.dir, "rev-parse", third+"^"); parent != revert {
		t.Errorf("step 3's parent = %s, want the revert %s", parent, revert)
	}
}

func TestExternalChangeStopsWrite(t *testing.T) {
	needGit(t)
	tests := []struct {
		name    string
		change  func(t *testing.T, work, step1, step2 string)
		cause   rollout.Cause
		reverts int // 0: none, 2: step 2's commit
		weights rollout.Weights
	}{
		{"hand edit", func(t *testing.T, work, _, _ string) {
			p := filepath.Join(work, "deploy/sample/rules.yaml")
			data, _ := os.ReadFile(p)
			out, err := SetWeights(data, seedRef, rollout.CanaryAt(5))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, work, "deploy/sample/rules.yaml", string(out))
			gitRun(t, work, "commit", "-q", "-am", "hotfix: send 5% to v2")
		}, rollout.CauseEdit, 0, rollout.CanaryAt(5)},
		{"checkout of an earlier step", func(t *testing.T, work, step1, _ string) {
			gitRun(t, work, "checkout", step1, "--", "deploy/sample/rules.yaml")
			gitRun(t, work, "commit", "-q", "-m", "back to 20%")
		}, rollout.CauseRevert, 2, rollout.CanaryAt(20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rem := newRemote(t, sampleFiles(t))
			r := openRepo(t, rem.url, nil)
			doc := parseDoc(t, sampleSpec)
			s1, s2 := step(t, r, doc, 1), step(t, r, doc, 2)
			work := personClone(t, rem.url)
			tt.change(t, work, s1, s2)
			gitRun(t, work, "push", "-q", "origin", "main")
			theirs := gitRun(t, work, "rev-parse", "HEAD")

			c := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 3, Steps: 3, Weights: rollout.CanaryAt(100),
				Base: doc.Spec.WeightsAt(1), BaseOwn: s2}
			_, err := r.SetWeights(ctxT(t), doc, c)
			var ext *rollout.ExternalChangeError
			if !errors.As(err, &ext) {
				t.Fatalf("SetWeights after a foreign change = %v, want an ExternalChangeError", err)
			}
			ch := ext.Change
			wantReverts := map[int]string{0: "", 2: s2}[tt.reverts]
			if ch.Cause != tt.cause || ch.Commit != theirs || ch.Weights != tt.weights || ch.Author != "Alice Person" || ch.Reverts != wantReverts {
				t.Errorf("change = %+v, want %s by Alice in %s at %s reverting %q", ch, tt.cause, theirs, tt.weights, wantReverts)
			}
			if head := gitRun(t, rem.dir, "rev-parse", "main"); head != theirs {
				t.Errorf("canaryd wrote despite the change: head %s", head)
			}
			r.Manage(doc)
			if chs, err := r.Sync(ctxT(t)); err != nil || len(chs) != 1 || chs[0].Commit != theirs {
				t.Errorf("Sync after the ExternalChangeError reported %+v, %v; want the change again", chs, err)
			}
			// Reporting accepted nothing: a fresh process with the same cache refuses the
			// same write, and writes once the caller believes the change (it was resumed).
			again := openRepo(t, rem.url, func(cfg *Config) { cfg.Dir = r.cfg.Dir })
			if _, err := again.SetWeights(ctxT(t), doc, c); !errors.As(err, &ext) {
				t.Fatalf("SetWeights after the change was reported = %v, want an ExternalChangeError again", err)
			}
			c.Base = tt.weights
			if _, err := again.SetWeights(ctxT(t), doc, c); err != nil {
				t.Fatalf("SetWeights believing the change: %v", err)
			}
		})
	}
}

// TestUnchangedWeightsAreRecordedOnce: a run's first step at 0 % and a rollback at 0 % move
// no traffic, but they are events of the run: each is one commit with an unchanged manifest,
// and repeating it (a retry after a crash) writes nothing more.
func TestUnchangedWeightsAreRecordedOnce(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	r := openRepo(t, rem.url, nil)
	doc := parseDoc(t, strings.Replace(sampleSpec, "steps: [20, 60, 100]", "steps: [0, 40, 100]", 1))
	if doc.Spec.Steps[0] != 0 {
		t.Fatalf("the spec's steps are %v; the test needs a first step at 0", doc.Spec.Steps)
	}
	seed := gitRun(t, rem.dir, "rev-parse", "main")
	first := step(t, r, doc, 1)
	if first == seed {
		t.Fatal("the run's first step at 0% wrote no commit")
	}
	if files := gitRun(t, rem.dir, "diff", "--name-only", first+"^", first); files != "" {
		t.Errorf("the first step changed files: %q", files)
	}
	if msg := gitRun(t, rem.dir, "log", "-1", "--format=%B", first); !strings.Contains(msg, "Rollout-Step: 1/3") {
		t.Errorf("the first step's message lacks its step:\n%s", msg)
	}
	if again := step(t, r, doc, 1); again != first {
		t.Errorf("repeating the first step wrote %s, want %s", again, first)
	}
	back := rollout.Commit{Kind: rollout.Rollback, Run: 1, Steps: 3, Weights: rollout.CanaryAt(0), Reason: "probe failed"}
	back = believe(t, r, doc, back)
	rb, err := r.SetWeights(ctxT(t), doc, back)
	if err != nil || rb == first {
		t.Fatalf("rollback at 0%%: %s, %v; want a new commit", rb, err)
	}
	if msg := gitRun(t, rem.dir, "log", "-1", "--format=%B", rb); !strings.Contains(msg, "Rollout-Reason: probe failed") {
		t.Errorf("the rollback's message lacks its reason:\n%s", msg)
	}
	if again, err := r.SetWeights(ctxT(t), doc, back); err != nil || again != rb {
		t.Errorf("repeating the rollback: %s, %v; want %s", again, err, rb)
	}
	if n := len(strings.Fields(gitRun(t, rem.dir, "log", "--format=%H", "main"))); n != 3 {
		t.Errorf("%d commits, want the seed, the first step and the rollback", n)
	}
}
