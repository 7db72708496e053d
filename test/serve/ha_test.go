package serve_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// replica returns a second view of the world: another canaryd serve process, with its own
// data dir, listen address and config, on the same remote and cluster. With le, both
// replicas elect a leader by a real Lease on the test's API server.
func (w *world) replica(name string, le bool) *world {
	r := *w
	r.proc, r.procDone = nil, nil
	dir := filepath.Join(w.dir, name)
	r.listen = freeAddr(w.t)
	r.config = filepath.Join(dir, "canaryd.yaml")
	base, err := os.ReadFile(w.config)
	if err != nil {
		w.t.Fatal(err)
	}
	cfg := strings.Replace(string(base), "listen: "+w.listen, "listen: "+r.listen, 1)
	cfg = strings.Replace(cfg, "dataDir: "+filepath.Join(w.dir, "data"), "dataDir: "+filepath.Join(dir, "data"), 1)
	if le {
		cfg = strings.Replace(cfg, "  mode: apply\n", fmt.Sprintf("  mode: apply\n  leaderElection: {enabled: true, namespace: %s, name: canaryd, "+
			"leaseDuration: 3s, renewDeadline: 2s, retryPeriod: 500ms}\n", w.ns), 1)
	}
	write(w.t, r.config, cfg)
	return &r
}

// kill ends the replica's process with SIGKILL, as a node failure would.
func (w *world) kill() {
	w.t.Helper()
	if w.proc == nil {
		return
	}
	w.proc.Process.Kill()
	<-w.procDone
	w.proc = nil
}

// leads reports whether this replica's API carries out actions (a follower answers 503).
func (w *world) leads() bool {
	code, _ := w.api("POST", "/api/v1/rollouts/"+rolloutName+"/resume", w.token, map[string]string{"reason": "probe for the leader"})
	return code != 503
}

var v2Weight = regexp.MustCompile(`Rollout-Weights: .*v2=(\d+)`)

// noUpwardMoveSince checks with the git CLI that no commit after since raises the canary's
// weight: every Rollout-Weights trailer after it is at most the weight at since.
func (w *world) noUpwardMoveSince(since string) {
	w.t.Helper()
	atSince := w.git(w.remote, "log", "-1", "--format=%(trailers:key=Rollout-Weights,valueonly)", since)
	limit := 100
	if m := v2Weight.FindStringSubmatch("Rollout-Weights: " + atSince); m != nil {
		limit, _ = strconv.Atoi(m[1])
	}
	for _, c := range strings.Split(w.git(w.remote, "log", "--format=%H%n%(trailers:key=Rollout-Weights)%x00", since+"..main"), "\x00") {
		if m := v2Weight.FindStringSubmatch(c); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > limit {
				w.t.Errorf("a commit after the takeover moves the canary up to %d%% (from %d%%):\n%s", n, limit, c)
			}
		}
	}
	if got := w.headCanaryByHand(); got > limit {
		w.t.Errorf("the head sends %d%% to the canary, more than the %d%% before the takeover", got, limit)
	}
}

// headCanaryByHand reads the canary's weight at the remote's head with the git CLI and a
// regexp (the sample's only route lists v1, then v2), not with canaryd's YAML reader.
func (w *world) headCanaryByHand() int {
	w.t.Helper()
	ms := weightRe.FindAllString(w.git(w.remote, "show", "main:deploy/sample/rules.yaml"), -1)
	if len(ms) != 2 {
		w.t.Fatalf("the manifest at the head has %d weight lines, want 2", len(ms))
	}
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(ms[1]), "weight:")))
	return n
}

func (w *world) historyHas(kind rollout.EventKind) bool {
	for _, ev := range w.history() {
		if ev.Kind == kind {
			return true
		}
	}
	return false
}

// TestTakeoverKeepsGitsWord runs two replicas with leader election; the leader takes the
// rollout to 40 %, then an operator or a person acts; the leader is killed with SIGKILL and
// the follower takes over. Whatever was decided stands: no commit after the takeover moves
// the canary up, and the new leader's phase is what Git says.
func TestTakeoverKeepsGitsWord(t *testing.T) {
	tests := []struct {
		name  string
		act   func(t *testing.T, w, leader *world)
		phase rollout.Phase
	}{
		{"abort at 40", func(t *testing.T, w, a *world) {
			if code, body := a.api("POST", "/api/v1/rollouts/"+rolloutName+"/abort", w.token, map[string]string{"reason": "bad build, stop now"}); code != 200 {
				t.Fatalf("abort: %d %s", code, body)
			}
		}, rollout.Aborted},
		{"a revert of the 40 step", func(t *testing.T, w, a *world) {
			person := filepath.Join(w.dir, "person")
			w.git(w.dir, "clone", "-q", w.remote, person)
			sha := w.git(person, "log", "-1", "--format=%H", "--grep=Rollout-Step: 2/", "main")
			w.git(person, "revert", "--no-edit", sha)
			w.git(person, "push", "-q", "origin", "main")
		}, rollout.Overridden},
		{"a hand edit to 50-50", func(t *testing.T, w, a *world) {
			w.handEdit(rollout.CanaryAt(50), "hotfix: split evenly")
		}, rollout.Overridden},
		{"pause at 40", func(t *testing.T, w, a *world) {
			if code, body := a.api("POST", "/api/v1/rollouts/"+rolloutName+"/pause", w.token, map[string]string{"reason": "looking at the logs"}); code != 200 {
				t.Fatalf("pause: %d %s", code, body)
			}
		}, rollout.Paused},
		{"a finished run", nil, rollout.Succeeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.slowBake("6s")
			a, b := w.replica("a", true), w.replica("b", true)
			a.serve("POD_NAME=canaryd-a")
			a.eventually(60*time.Second, "a leads", func() (bool, string) { return a.leads(), "" })
			a.eventually(90*time.Second, "step 2/3 at 40%", func() (bool, string) { return w.gitWeights().Canary == 40, w.gitWeights().String() })
			b.serve("POD_NAME=canaryd-b") // a replica that starts while the rollout stands at 40 %
			if tt.act != nil {
				tt.act(t, w, a)
			}
			a.waitPhase(60*time.Second, tt.phase)
			// The follower tells the truth within a poll interval (1s) of the leader's
			// move landing, and refuses actions with a 503 naming the leader.
			b.eventually(5*time.Second, "the follower shows the leader's state", func() (bool, string) {
				ra, rb := a.status(), b.status()
				return rb.Phase == ra.Phase && rb.Step == ra.Step && rb.Weights == ra.Weights && rb.Run == ra.Run,
					fmt.Sprintf("follower %s step %d at %s, leader %s step %d at %s", rb.Phase, rb.Step, rb.Weights, ra.Phase, ra.Step, ra.Weights)
			})
			if code, body := b.api("POST", "/api/v1/rollouts/"+rolloutName+"/pause", w.token, map[string]string{"reason": "x"}); code != 503 || !strings.Contains(string(body), "canaryd-a") {
				t.Errorf("an action on the follower = %d %s; want 503 naming canaryd-a", code, body)
			}
			before := w.git(w.remote, "rev-parse", "main")
			a.kill()
			b.eventually(30*time.Second, "b takes over", func() (bool, string) { return b.historyHas(rollout.EventTakeover), "" })
			r := b.waitPhase(10*time.Second, tt.phase)
			// Several ticks (@every 2s) pass under the new leader.
			deadline := time.Now().Add(7 * time.Second)
			b.eventually(10*time.Second, "ticks pass", func() (bool, string) { return time.Now().After(deadline), "" })
			if r = b.status(); r.Phase != tt.phase {
				t.Errorf("after the takeover: %s (%s), want %s", r.Phase, r.Message, tt.phase)
			}
			w.noUpwardMoveSince(before)
		})
	}
}

// slowBake makes each step bake for d, pushed as a person's edit of the spec, so that the
// test can act while the rollout stands at 40 %.
func (w *world) slowBake(d string) {
	work := filepath.Join(w.dir, "spec-edit")
	w.git(w.dir, "clone", "-q", w.remote, work)
	p := filepath.Join(work, "rollouts", rolloutName+".yaml")
	data, err := os.ReadFile(p)
	if err != nil {
		w.t.Fatal(err)
	}
	write(w.t, p, strings.Replace(string(data), "bake: 2s", "bake: "+d, 1))
	w.git(work, "commit", "-q", "-am", "rollouts: bake each step for "+d)
	w.git(work, "push", "-q", "origin", "main")
}

// handEdit sets grpc-vs's weights in Git as a person, with sed-like text edits.
func (w *world) handEdit(to rollout.Weights, msg string) string {
	work := filepath.Join(w.dir, fmt.Sprintf("hand-%d", time.Now().UnixNano()))
	w.git(w.dir, "clone", "-q", w.remote, work)
	p := filepath.Join(work, "deploy/sample/rules.yaml")
	data, err := os.ReadFile(p)
	if err != nil {
		w.t.Fatal(err)
	}
	out := setWeightsByHand(w.t, string(data), to)
	write(w.t, p, out)
	w.git(work, "commit", "-q", "-am", msg)
	w.git(work, "push", "-q", "origin", "main")
	return w.git(work, "rev-parse", "HEAD")
}

var weightRe = regexp.MustCompile(`(?m)^(\s*)weight: \d+`)

// setWeightsByHand rewrites the two weight lines of the sample's only route (v1 first, then
// v2), as a person with an editor would: the test does not use canaryd's editor.
func setWeightsByHand(t testing.TB, data string, to rollout.Weights) string {
	i := 0
	out := weightRe.ReplaceAllStringFunc(data, func(line string) string {
		indent := line[:strings.Index(line, "weight:")]
		i++
		if i == 1 {
			return indent + "weight: " + strconv.Itoa(to.Stable)
		}
		return indent + "weight: " + strconv.Itoa(to.Canary)
	})
	if i != 2 {
		t.Fatalf("the sample has %d weight lines, want 2", i)
	}
	return out
}

var _ = json.Marshal
