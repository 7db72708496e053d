package serve_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
)

// checkAgree fails when the API object and Git hold different weights.
func (w *world) checkAgree(when string) rollout.Weights {
	w.t.Helper()
	g, c := w.gitWeights(), w.clusterWeights()
	if g != c {
		w.t.Errorf("%s: Git holds %s but the cluster %s", when, g, c)
	}
	return g
}

func TestServeSucceeds(t *testing.T) {
	w := newWorld(t)
	w.serve()
	waited := waitCLI(t, w) // canaryd status NAME --watch, from the start of the run
	seen := map[int]bool{}
	w.eventually(90*time.Second, "Succeeded", func() (bool, string) {
		r := w.status()
		// Git leads a forward step by a moment; record each step at which both agree.
		if g, c := w.gitWeights(), w.clusterWeights(); g == c && g == r.Weights {
			seen[g.Canary] = true
		}
		return r.Phase == rollout.Succeeded, string(r.Phase) + " " + r.Message
	})
	if got := w.checkAgree("at the end"); got != rollout.CanaryAt(100) {
		t.Errorf("weights at the end %s, want 0/100", got)
	}
	if !seen[40] {
		t.Errorf("never saw Git and the cluster agree at 40%%: %v", seen)
	}
	if code, out := waited(); code != 0 || !strings.Contains(out, "grpc-helloworld-py: Succeeded step 3/3") {
		t.Errorf("status --watch --timeout 2m exited %d after Succeeded, want 0:\n%s", code, out)
	}
	commits := w.canarydCommits()
	if len(commits) != 3 {
		t.Fatalf("%d canaryd commits, want 3 (one per step):\n%s", len(commits), strings.Join(commits, "\n"))
	}
	for i, want := range []string{"Rollout-Step: 3/3", "Rollout-Step: 2/3", "Rollout-Step: 1/3"} {
		if !strings.Contains(commits[i], want) || !strings.Contains(commits[i], "Rollout-Run: 1") {
			t.Errorf("commit %d lacks %q:\n%s", i, want, commits[i])
		}
	}
	evs := w.history()
	verdicts := 0
	for _, ev := range evs {
		if ev.Kind == rollout.EventVerdict {
			verdicts++
			if ev.Verdict == nil || len(ev.Verdict.Evidence) == 0 {
				t.Errorf("verdict event %d without evidence: %+v", ev.Seq, ev.Verdict)
			}
		}
	}
	if verdicts < 3 {
		t.Errorf("history holds %d verdicts, want every check", verdicts)
	}
}

func TestServeRollsBackFailingCanary(t *testing.T) {
	w := newWorld(t)
	w.v2.SetErrors(0.3, codes.Unavailable)
	w.serve()
	waited := waitCLI(t, w)
	r := w.waitPhase(90*time.Second, rollout.RolledBack, rollout.Succeeded)
	if r.Phase != rollout.RolledBack {
		t.Fatalf("a canary failing 30%% of calls ended %s", r.Phase)
	}
	if code, out := waited(); code != 1 || !strings.Contains(out, "RolledBack") {
		t.Errorf("status --watch --timeout 2m exited %d after RolledBack, want 1:\n%s", code, out)
	}
	// The phase is RolledBack from the decision on; the move lands a moment later.
	w.eventually(30*time.Second, "canary 0 in Git and the cluster", func() (bool, string) {
		g, c := w.gitWeights(), w.clusterWeights()
		return g == rollout.CanaryAt(0) && c == g, "Git " + g.String() + ", cluster " + c.String()
	})
	newest := w.canarydCommits()[0]
	if !strings.Contains(newest, "Rollout-Reason: ") {
		t.Errorf("the rollback commit has no reason:\n%s", newest)
	}
	for _, c := range w.canarydCommits() {
		if strings.Contains(c, "Rollout-Step: 3/3") {
			t.Errorf("the failing canary reached 100%%:\n%s", c)
		}
	}
}

func TestServeGitRevertOverrides(t *testing.T) {
	w := newWorld(t)
	w.serve()
	w.eventually(60*time.Second, "step 2/3 at 40%", func() (bool, string) {
		return w.gitWeights().Canary == 40, w.gitWeights().String()
	})
	w.stopAt40(t)
}

// stopAt40 reverts canaryd's 40% commit as a person and checks that Git wins.
func (w *world) stopAt40(t *testing.T) {
	var sha string
	for _, c := range w.canarydCommits() {
		if strings.Contains(c, "Rollout-Step: 2/3") {
			sha = strings.Fields(c)[0]
		}
	}
	if sha == "" {
		t.Fatal("no 40% commit")
	}
	person := filepath.Join(w.dir, "person")
	w.git(w.dir, "clone", "-q", w.remote, person)
	w.git(person, "revert", "--no-edit", sha)
	w.git(person, "push", "-q", "origin", "main")
	revert := w.git(person, "rev-parse", "HEAD")
	r := w.waitPhase(30*time.Second, rollout.Overridden)
	w.eventually(30*time.Second, "the cluster follows Git", func() (bool, string) {
		c := w.clusterWeights()
		return c == rollout.CanaryAt(0), c.String()
	})
	if !strings.Contains(r.Message, "Pat Person") {
		t.Errorf("status does not say who overrode it: %q", r.Message)
	}
	// No further step, even after several ticks (@every 2s).
	deadline := time.Now().Add(7 * time.Second)
	w.eventually(10*time.Second, "several ticks pass", func() (bool, string) { return time.Now().After(deadline), "" })
	if head := w.git(w.remote, "rev-parse", "main"); head != revert {
		t.Fatalf("canaryd pushed after the revert: head %s, revert %s\n%s", head, revert, strings.Join(w.commits()[:2], "\n"))
	}
	if r := w.status(); r.Phase != rollout.Overridden {
		t.Fatalf("phase %s after ticks, want Overridden", r.Phase)
	}
	found := false
	for _, ev := range w.history() {
		if ev.Kind == rollout.EventOverridden && ev.Actor == "Pat Person" {
			found = true
		}
	}
	if !found {
		t.Errorf("history does not record the override by Pat Person")
	}
	// canaryd resume continues from what Git holds.
	out, err := runCLI(t, w, "resume", rolloutName, "--reason", "reverted on purpose; carry on")
	if err != nil {
		t.Fatalf("canaryd resume: %v\n%s", err, out)
	}
	w.waitPhase(90*time.Second, rollout.Succeeded)
	w.checkAgree("after resume")
}

func TestServeAPIAuth(t *testing.T) {
	w := newWorld(t)
	w.serve()
	path := "/api/v1/rollouts/" + rolloutName + "/pause"
	body := map[string]string{"reason": "test"}
	if code, _ := w.api("POST", path, "", body); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := w.api("POST", path, "wrong", body); code != 403 {
		t.Errorf("wrong token: %d, want 403", code)
	}
	code, data := w.api("POST", "/api/v1/rollouts/nope/pause", w.token, body)
	var e struct{ Error string }
	if code != 404 || json.Unmarshal(data, &e) != nil || e.Error == "" {
		t.Errorf("unknown rollout: %d %s, want 404 with a JSON error", code, data)
	}
	if code, _ := w.api("GET", "/api/v1/rollouts/"+rolloutName+"/history?limit=0", "", nil); code != 400 {
		t.Errorf("limit=0: %d, want 400", code)
	}
	if code, _ := w.api("GET", "/api/v1/rollouts/"+rolloutName+"/history?limit=100000", "", nil); code != 400 {
		t.Errorf("limit=100000: %d, want 400", code)
	}
	if code, data := w.api("POST", path, w.token, body); code != 200 {
		t.Fatalf("pause with the token: %d %s", code, data)
	}
	if r := w.status(); r.Phase != rollout.Paused {
		t.Errorf("phase %s after pause, want Paused", r.Phase)
	}
	if code, _ := w.api("POST", path, w.token, body); code != 409 {
		t.Errorf("pausing twice: %d, want 409", code)
	}
	w.eventually(30*time.Second, "a check", func() (bool, string) { return w.status().LastVerdict != nil, "" })
	if code, _ := w.api("GET", "/metrics", "", nil); code != 200 {
		t.Errorf("/metrics: %d", code)
	}
	_, metrics := w.api("GET", "/metrics", "", nil)
	for _, m := range []string{"canaryd_rollout_weight{", "canaryd_rollout_phase{", "canaryd_analysis_checks_total{"} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if strings.Contains(w.logText(), w.token) {
		t.Errorf("the API token appears in canaryd's log")
	}
}

func TestServeRebuildsStoreFromGit(t *testing.T) {
	w := newWorld(t)
	w.serve()
	w.eventually(60*time.Second, "40%", func() (bool, string) { return w.gitWeights().Canary == 40, w.gitWeights().String() })
	w.stop()
	if err := os.Remove(filepath.Join(w.dir, "data", "canaryd.db")); err != nil {
		t.Fatal(err)
	}
	w.serve()
	r := w.status()
	if r.Run != 1 || r.Weights.Canary < 40 {
		t.Fatalf("after losing the store: run %d at %s, want run 1 at ≥ 40%% rebuilt from Git", r.Run, r.Weights)
	}
	steps := 0
	for _, ev := range w.history() {
		if ev.Kind == rollout.EventStep && ev.Commit != "" {
			steps++
		}
	}
	if steps < 2 {
		t.Errorf("rebuilt history holds %d step events with commits, want ≥ 2", steps)
	}
	w.waitPhase(90*time.Second, rollout.Succeeded)
	if n := len(w.canarydCommits()); n != 3 {
		t.Errorf("%d canaryd commits, want 3: no step doubled", n)
	}
}

// TestServeCrashMatrix kills canaryd serve with SIGKILL at each point of the step protocol
// of the 40% step, restarts it, and checks the rollout finishes with no step lost or
// doubled and no history lost.
func TestServeCrashMatrix(t *testing.T) {
	for _, point := range []string{"intent", "committed", "applied", "recorded"} {
		t.Run(point, func(t *testing.T) {
			w := newWorld(t)
			w.serve("CANARYD_TEST_KILL_AT=" + point + ":2") // the 2nd move is the 40% step
			w.waitKilled()
			w.serve()
			w.waitPhase(120*time.Second, rollout.Succeeded)
			commits := w.canarydCommits()
			if len(commits) != 3 {
				t.Fatalf("%d canaryd commits after a crash at %s, want 3:\n%s", len(commits), point, strings.Join(commits, "\n"))
			}
			w.checkAgree("after the crash")
			steps := map[int]int{}
			for _, ev := range w.history() {
				if ev.Kind == rollout.EventStep {
					steps[ev.Weights.Canary]++
				}
			}
			for _, wt := range []int{0, 40, 100} {
				if steps[wt] != 1 {
					t.Errorf("history has %d step events at %d%%, want 1 (all: %v)", steps[wt], wt, steps)
				}
			}
		})
	}
}
