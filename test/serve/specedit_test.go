package serve_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
)

// editSpec edits the rollout's spec as a person with the git CLI: each pair of old, new
// strings is replaced once, and the edit is pushed (rebased on canaryd's commits).
func (w *world) editSpec(msg string, pairs ...string) {
	w.t.Helper()
	work := filepath.Join(w.dir, fmt.Sprintf("spec-edit-%d", time.Now().UnixNano()))
	w.git(w.dir, "clone", "-q", w.remote, work)
	p := filepath.Join(work, "rollouts", rolloutName+".yaml")
	data, err := os.ReadFile(p)
	if err != nil {
		w.t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			w.t.Fatalf("the spec has no %q:\n%s", pairs[i], s)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	write(w.t, p, s)
	w.git(work, "commit", "-q", "-am", msg)
	w.pushRebasing(work)
}

// stepWeights is the canary weight of every canaryd step commit on main, oldest first,
// read with git.
func (w *world) stepWeights() []string {
	var out []string
	cs := w.canarydCommits()
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		if !strings.Contains(c, "Rollout-Kind: step") {
			continue
		}
		_, after, _ := strings.Cut(c, "Rollout-Weights: ")
		after, _, _ = strings.Cut(after, "\n")
		out = append(out, after)
	}
	return out
}

// eventsOf returns the rollout's history events of kind k, read through the API.
func (w *world) eventsOf(k rollout.EventKind) []rollout.Event {
	var out []rollout.Event
	for _, ev := range w.history() {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits for a history event of kind k whose message contains text.
func (w *world) waitEvent(k rollout.EventKind, text string) rollout.Event {
	w.t.Helper()
	var found rollout.Event
	w.eventually(30*time.Second, fmt.Sprintf("a %s event %q", k, text), func() (bool, string) {
		evs := w.eventsOf(k)
		for _, ev := range evs {
			if strings.Contains(ev.Message, text) {
				found = ev
				return true, ""
			}
		}
		return false, fmt.Sprint(evs)
	})
	return found
}

// checkSucceededAt100 checks, with the git CLI and the API server, that the run ended at 100 %.
func (w *world) checkSucceededAt100() {
	w.t.Helper()
	w.waitPhase(90*time.Second, rollout.Succeeded)
	w.eventually(30*time.Second, "canary 100 in Git and the cluster", func() (bool, string) {
		g, c := w.gitWeights(), w.clusterWeights()
		return g == rollout.CanaryAt(100) && c == g, "Git " + g.String() + ", cluster " + c.String()
	})
}

// TestServeSpecEditCutsStepsBelowTheWeight: a rollout at 70 % of [0, 70, 100] whose steps
// are cut to [0, 20, 40, 100] stays at 70 % and continues to 100 %: it neither goes back nor
// stays stuck, and never ends the run short of 100 %.
func TestServeSpecEditCutsStepsBelowTheWeight(t *testing.T) {
	w := newWorld(t)
	w.editSpec("rollouts: steps to 70, bake 30s", "steps: [0, 40, 100]", "steps: [0, 70, 100]", "bake: 2s", "bake: 30s")
	w.serve()
	w.eventually(120*time.Second, "70%", func() (bool, string) { return w.gitWeights().Canary == 70, w.gitWeights().String() })
	w.editSpec("rollouts: fewer, lower steps", "steps: [0, 70, 100]", "steps: [0, 20, 40, 100]", "bake: 30s", "bake: 2s")
	w.waitEvent(rollout.EventSpecChanged, "steps 0,70,100 -> 0,20,40,100: at 70 % (not a step of the new list), next 100")
	w.checkSucceededAt100()
	got := w.stepWeights()
	want := []string{"v1=100,v2=0", "v1=30,v2=70", "v1=0,v2=100"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("step commits %v, want %v", got, want)
	}
	if c := w.canarydCommits()[0]; !strings.Contains(c, "Rollout-Step: 4/4") {
		t.Errorf("the last step's commit does not count in the new steps:\n%s", c)
	}
}

// TestServeSpecEditExtendsSteps: a rollout at 40 % of [0, 40, 100] whose steps are extended
// to [0, 40, 60, 80, 100] takes every new step above 40 %.
func TestServeSpecEditExtendsSteps(t *testing.T) {
	w := newWorld(t)
	w.slowBake("30s")
	w.serve()
	w.eventually(120*time.Second, "40%", func() (bool, string) { return w.gitWeights().Canary == 40, w.gitWeights().String() })
	w.editSpec("rollouts: more steps", "steps: [0, 40, 100]", "steps: [0, 40, 60, 80, 100]", "bake: 30s", "bake: 2s")
	w.waitEvent(rollout.EventSpecChanged, "steps 0,40,100 -> 0,40,60,80,100: at 40 %, next 60")
	w.checkSucceededAt100()
	got := w.stepWeights()
	want := []string{"v1=100,v2=0", "v1=60,v2=40", "v1=40,v2=60", "v1=20,v2=80", "v1=0,v2=100"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("step commits %v, want %v", got, want)
	}
}

// TestServeSpecMadeInvalidAt40StillRollsBack: the spec of a rollout at 40 % becomes
// invalid, then the canary starts failing: the last valid spec's gates still judge it and
// it rolls back (Git and the cluster at 0), also after a restart while the spec is
// invalid. Status says so beside the phase, and history holds one invalid event per
// distinct reason.
func TestServeSpecMadeInvalidAt40StillRollsBack(t *testing.T) {
	w := newWorld(t)
	w.slowBake("30s")
	w.serve()
	w.eventually(120*time.Second, "40%", func() (bool, string) { return w.gitWeights().Canary == 40, w.gitWeights().String() })
	w.editSpec("rollouts: a typo", "steps: [0, 40, 100]", "steps: [0, 40, 40, 100]")
	const said = "spec invalid at rollouts/grpc-helloworld-py.yaml:"
	w.eventually(30*time.Second, "status says the spec is invalid", func() (bool, string) {
		r := w.status()
		return r.Phase == rollout.Progressing && len(r.Problems) > 0 && strings.Contains(r.Message, said) &&
			strings.Contains(r.Message, "running on the last valid spec"), fmt.Sprintf("%s %q %v", r.Phase, r.Message, r.Problems)
	})
	w.editSpec("rollouts: another typo", "steps: [0, 40, 40, 100]", "steps: [0, 40, 40, 100]\n  stepz: 1")
	w.eventually(30*time.Second, "an invalid event for the new reason", func() (bool, string) {
		evs := w.eventsOf(rollout.EventInvalid)
		return len(evs) == 2 && strings.Contains(evs[0].Reason, "stepz"), fmt.Sprint(evs)
	})
	// A restart while the spec is invalid finds the last valid spec in Git's history.
	w.stop()
	w.serve()
	if r := w.status(); r.Phase != rollout.Progressing || !strings.Contains(r.Message, "running on the last valid spec") || len(r.Problems) != 2 {
		t.Fatalf("after a restart: %s %q %v", r.Phase, r.Message, r.Problems)
	}
	w.v2.SetErrors(1.0, codes.Unavailable)
	r := w.waitPhase(90*time.Second, rollout.RolledBack, rollout.Succeeded)
	if r.Phase != rollout.RolledBack {
		t.Fatalf("a failing canary on an invalid spec ended %s: %s", r.Phase, r.Message)
	}
	w.eventually(30*time.Second, "canary 0 in Git and the cluster", func() (bool, string) {
		g, c := w.gitWeights(), w.clusterWeights()
		return g == rollout.CanaryAt(0) && c == g, "Git " + g.String() + ", cluster " + c.String()
	})
	if c := w.canarydCommits()[0]; !strings.Contains(c, "Rollout-Kind: rollback") || !strings.Contains(c, "Rollout-Reason: ") {
		t.Errorf("the newest canaryd commit is not a rollback with a reason:\n%s", c)
	}
	for _, c := range w.canarydCommits() {
		if strings.Contains(c, "v2=100") {
			t.Errorf("the canary reached 100%% on an invalid spec:\n%s", c)
		}
	}
	invalid := w.eventsOf(rollout.EventInvalid)
	if len(invalid) != 2 || !strings.Contains(invalid[1].Message, "duplicated") || !strings.Contains(invalid[0].Reason, "stepz") {
		t.Errorf("invalid events %+v, want one per distinct reason (duplicated step, unknown field)", invalid)
	}
	if r := w.status(); len(r.Problems) == 0 || !strings.Contains(r.Message, said) {
		t.Errorf("after the rollback, status forgot the invalid spec: %q %v", r.Message, r.Problems)
	}
}

// TestServeResumeFromOverriddenAt100Succeeds: a person sets 0/100 by hand at 40 %, an
// operator resumes; once the gates pass at 100 % the rollout is Succeeded.
func TestServeResumeFromOverriddenAt100Succeeds(t *testing.T) {
	w := newWorld(t)
	w.slowBake("30s")
	w.serve()
	w.eventually(120*time.Second, "40%", func() (bool, string) { return w.gitWeights().Canary == 40, w.gitWeights().String() })
	hand := w.handEdit(rollout.CanaryAt(100), "deploy: all traffic to v2 by hand")
	r := w.waitPhase(30*time.Second, rollout.Overridden)
	if r.Weights.Canary != 100 {
		t.Fatalf("Overridden at %s, want the hand edit's 100", r.Weights)
	}
	// canaryd applies what Git says before it takes a resume: wait for the cluster to hold
	// it and for the rollout to have recorded so.
	w.eventually(30*time.Second, "the hand edit applied", func() (bool, string) {
		r, c := w.status(), w.clusterWeights()
		return c.Canary == 100 && strings.Contains(r.Message, "following"), c.String() + " " + r.Message
	})
	w.act("resume", "ann", "v2 looks fine at 100")
	w.checkSucceededAt100()
	c := w.canarydCommits()[0]
	if !strings.Contains(c, "Rollout-Kind: resume") || !strings.Contains(c, "Rollout-Actor: ann") {
		t.Errorf("the newest canaryd commit is not ann's resume:\n%s", c)
	}
	if over := w.eventsOf(rollout.EventOverridden); len(over) == 0 || over[0].Commit != hand {
		t.Errorf("overridden events %+v, want one naming the hand edit %s", over, hand)
	}
	if n := len(w.eventsOf(rollout.EventSucceeded)); n != 1 {
		t.Errorf("%d succeeded events, want 1", n)
	}
}
