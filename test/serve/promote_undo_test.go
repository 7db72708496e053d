package serve_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// withPerson gives the world's daemon an api.tokensFile naming one person, and returns the
// path of a file that holds that person's token.
func (w *world) withPerson(name, token string) string {
	sum := sha256.Sum256([]byte(token))
	people := filepath.Join(w.dir, "people")
	write(w.t, people, hex.EncodeToString(sum[:])+" "+name+"\n")
	mine := filepath.Join(w.dir, "my-token")
	write(w.t, mine, token+"\n")
	data, err := os.ReadFile(w.config)
	if err != nil {
		w.t.Fatal(err)
	}
	shared := "api: {tokenFile: " + filepath.Join(w.dir, "api-token")
	cfg := strings.Replace(string(data), shared, shared+", tokensFile: "+people, 1)
	if cfg == string(data) {
		w.t.Fatalf("the config has no %q line:\n%s", shared, data)
	}
	write(w.t, w.config, cfg)
	return mine
}

// newestOwn returns the newest canaryd commit, waiting until there are n of them.
func (w *world) newestOwn(n int, what string) string {
	w.t.Helper()
	var cs []string
	w.eventually(60*time.Second, what, func() (bool, string) {
		cs = w.canarydCommits()
		return len(cs) >= n, strings.Join(cs, "\n")
	})
	return cs[0]
}

func mustHave(t *testing.T, commit string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(commit, l) {
			t.Errorf("commit lacks %q:\n%s", l, commit)
		}
	}
}

// TestServePromoteOneStepFullThenUndo drives a rollout whose steps bake for an hour with the
// built binary's CLI: promote takes one step, promote --full the rest, undo sends the
// canary back to 0 after Succeeded with the reason and the actor of the person's token.
// The git CLI reads what was committed; the API server says what the cluster holds.
func TestServePromoteOneStepFullThenUndo(t *testing.T) {
	w := newWorld(t)
	w.slowBake("1h") // no step forward on its own
	mine := w.withPerson("ann@example.com", "ann-s3cret")
	w.serve()
	w.newestOwn(1, "the first step's commit")
	w.eventually(30*time.Second, "step 1/3", func() (bool, string) {
		r := w.status()
		return r.Phase == rollout.Progressing && r.Step == 1, string(r.Phase) + " " + r.Message
	})

	if out, err := runCLI(t, w, "promote", rolloutName, "--reason", "looks fine", "--token-file", mine, "--actor", "mallory"); err != nil {
		t.Fatalf("canaryd promote: %v\n%s", err, out)
	}
	c := w.newestOwn(2, "the promotion's commit")
	mustHave(t, c, "Rollout-Kind: promote", "Rollout-Step: 2/3", "Rollout-Weights: v1=60,v2=40",
		"Rollout-Actor: ann@example.com", "Rollout-Reason: looks fine")
	w.eventually(30*time.Second, "the cluster at 40%", func() (bool, string) {
		c := w.clusterWeights()
		return c == rollout.CanaryAt(40), c.String()
	})
	if r := w.status(); r.Phase != rollout.Progressing || r.Step != 2 {
		t.Fatalf("after one promote: %s at step %d, want Progressing at 2/3", r.Phase, r.Step)
	}

	if out, err := runCLI(t, w, "promote", rolloutName, "--full", "--token-file", mine); err != nil {
		t.Fatalf("canaryd promote --full: %v\n%s", err, out)
	}
	mustHave(t, w.newestOwn(3, "the full promotion's commit"), "Rollout-Kind: promote", "Rollout-Step: 3/3", "Rollout-Weights: v1=0,v2=100")
	w.waitPhase(30*time.Second, rollout.Succeeded)

	out, err := runCLI(t, w, "undo", rolloutName)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "--reason is required") {
		t.Fatalf("undo without --reason: %v, want exit 2 and a hint:\n%s", err, out)
	}
	if out, err := runCLI(t, w, "undo", rolloutName, "--reason", "errors in the logs", "--token-file", mine); err != nil {
		t.Fatalf("canaryd undo: %v\n%s", err, out)
	}
	c = w.newestOwn(4, "the undo's commit")
	mustHave(t, c, "Rollout-Kind: undo", "Rollout-Weights: v1=100,v2=0", "Rollout-Actor: ann@example.com",
		"Rollout-Reason: errors in the logs", ": undo, canary v2 at 0%")
	if strings.Contains(c, "Rollout-Step:") {
		t.Errorf("an undo names no step:\n%s", c)
	}
	if g := w.gitWeights(); g != rollout.CanaryAt(0) {
		t.Errorf("Git holds %s after the undo, want 100/0", g)
	}
	r := w.waitPhase(30*time.Second, rollout.RolledBack)
	w.checkAgree("after the undo")
	if !strings.Contains(r.Message, "errors in the logs") {
		t.Errorf("status does not say why: %q", r.Message)
	}
	kinds := w.kinds()
	if diff := strings.Join(kinds[:4], ","); diff != "undo,promote,promote,step" {
		t.Errorf("Rollout-Kind of the newest commits: %s, want undo,promote,promote,step", diff)
	}
	// A second undo has nothing to take back: the server refuses, the CLI exits 1.
	out, err = runCLI(t, w, "undo", rolloutName, "--reason", "again")
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("a second undo: %v, want exit 1:\n%s", err, out)
	}
}
