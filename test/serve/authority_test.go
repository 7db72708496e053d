package serve_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// act sends an operator action through the API and fails the test unless it is accepted.
func (w *world) act(action, actor, reason string) {
	w.t.Helper()
	code, body := w.api("POST", "/api/v1/rollouts/"+rolloutName+"/"+action, w.token, map[string]string{"actor": actor, "reason": reason})
	if code != 200 {
		w.t.Fatalf("%s: %d %s", action, code, body)
	}
}

// kinds returns the Rollout-Kind of every commit on main, newest first, read with git.
func (w *world) kinds() []string {
	out := w.git(w.remote, "log", "--format=%x00%(trailers:key=Rollout-Kind,valueonly)", "main")
	var ks []string
	for _, k := range strings.Split(out, "\x00") {
		if k = strings.TrimSpace(k); k != "" {
			ks = append(ks, k)
		}
	}
	return ks
}

func count(ks []string, k string) int {
	n := 0
	for _, x := range ks {
		if x == k {
			n++
		}
	}
	return n
}

// tryAct sends an action whose request may die with the process (a crash test kills serve
// while the action is being carried out).
func (w *world) tryAct(action, actor, reason string) {
	data, _ := json.Marshal(map[string]string{"actor": actor, "reason": reason})
	req, _ := http.NewRequest("POST", "http://"+w.listen+"/api/v1/rollouts/"+rolloutName+"/"+action, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+w.token)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

// restartEmpty stops serve, deletes its whole data dir and starts it again.
func (w *world) restartEmpty() {
	w.t.Helper()
	w.stop()
	if err := os.RemoveAll(filepath.Join(w.dir, "data")); err != nil {
		w.t.Fatal(err)
	}
	w.serve()
}

// TestServeHoldsSurviveAnEmptyDataDir takes each operator action in turn and restarts serve
// with an empty data dir after it: Git alone gives back the phase, run, step and weights,
// and the hold's actor and reason in history.
func TestServeHoldsSurviveAnEmptyDataDir(t *testing.T) {
	w := newWorld(t)
	w.slowBake("6s")
	w.serve()
	w.eventually(90*time.Second, "40%", func() (bool, string) { return w.gitWeights().Canary == 40, w.gitWeights().String() })
	steps := []struct {
		action string
		phase  rollout.Phase
		kind   rollout.EventKind
	}{
		{"pause", rollout.Paused, rollout.EventPaused},
		{"resume", rollout.Progressing, rollout.EventResumed},
		{"abort", rollout.Aborted, rollout.EventAborted},
		{"retry", rollout.Progressing, rollout.EventStarted},
		{"promote?full=true", rollout.Succeeded, rollout.EventSucceeded}, // a plain promote takes one step
	}
	for _, s := range steps {
		actor, reason := "ann-"+s.action, "why "+s.action
		w.act(s.action, actor, reason)
		w.waitPhase(30*time.Second, s.phase)
		w.eventually(30*time.Second, s.action+" committed", func() (bool, string) {
			c := w.canarydCommits()[0]
			return strings.Contains(c, "Rollout-Actor: "+actor), c
		})
		var before server.Rollout
		w.eventually(30*time.Second, s.action+" recorded", func() (bool, string) {
			// The commit lands before the move's result is recorded: wait for the state to
			// say what Git says.
			before = w.status()
			return before.Phase == s.phase && before.Weights.Canary == w.headCanaryByHand(), before.Message
		})
		w.restartEmpty()
		after := w.status()
		if s.phase == rollout.Progressing && after.Phase == rollout.Succeeded {
			t.Fatalf("after %s the run moved on before it was checked: %+v", s.action, after)
		}
		if after.Phase != before.Phase || after.Run != before.Run || after.Step != before.Step || after.Weights != before.Weights {
			t.Errorf("after %s and an empty data dir: %s run %d step %d at %s; before: %s run %d step %d at %s",
				s.action, after.Phase, after.Run, after.Step, after.Weights, before.Phase, before.Run, before.Step, before.Weights)
		}
		found := false
		for _, ev := range w.history() {
			if ev.Kind == s.kind && (s.kind == rollout.EventSucceeded || ev.Actor == actor && ev.Reason == reason) {
				found = true
			}
		}
		if !found {
			t.Errorf("after %s and an empty data dir, history has no %s event by %s (%q)", s.action, s.kind, actor, reason)
		}
	}
	// Each hold is one commit, with its kind in a trailer git reads.
	kinds := w.kinds()
	for _, k := range []string{"pause", "resume", "abort", "retry", "promote"} {
		if n := count(kinds, k); n != 1 {
			t.Errorf("%d commits of kind %s, want 1: %v", n, k, kinds)
		}
	}
}

// TestServeForcePushOverrides: a person force-pushes a history without canaryd's step
// commits; canaryd does not follow its plan on the rewritten history.
func TestServeForcePushOverrides(t *testing.T) {
	w := newWorld(t)
	w.slowBake("6s")
	w.serve()
	w.eventually(90*time.Second, "40%", func() (bool, string) { return w.gitWeights().Canary == 40, w.gitWeights().String() })
	person := filepath.Join(w.dir, "rewrite")
	w.git(w.dir, "clone", "-q", w.remote, person)
	first := w.git(person, "log", "--format=%H", "--grep=Rollout-Step: 1/", "main")
	w.git(person, "reset", "-q", "--hard", first+"^")
	write(t, filepath.Join(person, "NOTES.md"), "history rewritten\n")
	w.git(person, "add", "-A")
	w.git(person, "commit", "-q", "-m", "squash the history")
	w.git(person, "push", "-q", "--force", "origin", "main")
	forced := w.git(person, "rev-parse", "HEAD")
	r := w.waitPhase(30*time.Second, rollout.Overridden)
	deadline := time.Now().Add(7 * time.Second)
	w.eventually(10*time.Second, "ticks pass", func() (bool, string) { return time.Now().After(deadline), "" })
	if head := w.git(w.remote, "rev-parse", "main"); head != forced {
		t.Errorf("canaryd committed on the rewritten history: head %s, forced %s\n%s", head, forced, strings.Join(w.commits()[:2], "\n"))
	}
	if r = w.status(); r.Phase != rollout.Overridden || r.Weights.Canary != 0 {
		t.Errorf("after the rewrite: %s at %s (%s), want Overridden at Git's 100/0", r.Phase, r.Weights, r.Message)
	}
}

// TestServeTwoInstancesWithoutElection runs two canaryd processes with their own data dirs
// on one remote and no leader election: after one aborts, the other makes no move up.
func TestServeTwoInstancesWithoutElection(t *testing.T) {
	w := newWorld(t)
	w.slowBake("6s")
	b := w.replica("b", false)
	w.serve()
	w.eventually(90*time.Second, "40%", func() (bool, string) { return w.gitWeights().Canary == 40, w.gitWeights().String() })
	b.serve()
	w.act("abort", "ann", "bad build, stop now")
	w.waitPhase(30*time.Second, rollout.Aborted)
	w.eventually(30*time.Second, "abort committed", func() (bool, string) { return w.gitWeights().Canary == 0, w.gitWeights().String() })
	abort := w.git(w.remote, "log", "-1", "--format=%H", "--grep=Rollout-Kind: abort", "main")
	deadline := time.Now().Add(8 * time.Second)
	w.eventually(12*time.Second, "ticks pass", func() (bool, string) { return time.Now().After(deadline), "" })
	w.noUpwardMoveSince(abort)
	for _, r := range []server.Rollout{w.status(), b.status()} {
		if r.Phase != rollout.Aborted && r.Phase != rollout.Overridden {
			t.Errorf("an instance is %s at %s (%s) after the other aborted; want Aborted or Overridden", r.Phase, r.Weights, r.Message)
		}
	}
}

// TestServeCrashMatrixHolds kills serve with SIGKILL at each point of the step protocol of
// an abort, a pause and a rollback, restarts it, and checks that the move lands exactly
// once with its history.
func TestServeCrashMatrixHolds(t *testing.T) {
	moves := []struct {
		name  string
		kind  string // the Rollout-Kind of the move's commit
		start func(w *world)
		phase rollout.Phase
	}{
		{"abort", "abort", func(w *world) { w.tryAct("abort", "ann", "stop") }, rollout.Aborted},
		{"pause", "pause", func(w *world) { w.tryAct("pause", "ann", "hold on") }, rollout.Paused},
		{"rollback", "rollback", func(w *world) { w.v2.SetErrors(1, codes.Unavailable) }, rollout.RolledBack},
	}
	for _, mv := range moves {
		for _, point := range []string{"intent", "committed", "applied", "recorded"} {
			if mv.kind == "pause" && point == "applied" {
				continue // a pause changes no weight: nothing is applied
			}
			t.Run(mv.name+"/"+point, func(t *testing.T) {
				w := newWorld(t)
				w.slowBake("6s")
				w.serve("CANARYD_TEST_KILL_AT=" + point + ":3") // moves 1 and 2 are the 0% and 40% steps
				w.eventually(90*time.Second, "40%", func() (bool, string) { return w.gitWeights().Canary == 40, w.gitWeights().String() })
				w.eventually(30*time.Second, "the 40% step recorded", func() (bool, string) {
					r := w.status()
					return r.Weights.Canary == 40 && r.Phase == rollout.Progressing, r.Message
				})
				mv.start(w)
				w.waitKilled()
				w.serve()
				w.waitPhase(60*time.Second, mv.phase)
				w.eventually(30*time.Second, mv.name+" in Git", func() (bool, string) {
					return count(w.kinds(), mv.kind) >= 1, fmt.Sprint(w.kinds())
				})
				kinds := w.kinds()
				if n := count(kinds, mv.kind); n != 1 {
					t.Errorf("%d %s commits after a crash at %s, want 1: %v", n, mv.kind, point, kinds)
				}
				if n := count(kinds, "step"); n != 2 {
					t.Errorf("%d step commits, want the 0%% and 40%% steps once each: %v", n, kinds)
				}
				if mv.kind != "pause" {
					w.eventually(30*time.Second, "the cluster at 0", func() (bool, string) {
						c := w.clusterWeights()
						return c == rollout.CanaryAt(0), c.String()
					})
				}
			})
		}
	}
}
