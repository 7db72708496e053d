package serve_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// broken is one spec a careless colleague or a hostile environment pushes beside the good
// rollout, and the reason its status must give.
type broken struct {
	name   string
	files  map[string]string // repo path → content, besides the spec
	links  map[string]string // repo path → symlink target
	spec   func(w *world) string
	reason string
}

// specAs is the world's spec renamed, pointed at another VirtualService and manifest.
func (w *world) specAs(name, vs, manifest, extra string) string {
	s := w.spec(extra)
	s = strings.Replace(s, "metadata: {name: "+rolloutName+"}", "metadata: {name: "+name+"}", 1)
	s = strings.Replace(s, "name: grpc-vs}", "name: "+vs+"}", 1)
	return strings.Replace(s, "manifest: deploy/sample/rules.yaml", "manifest: "+manifest, 1)
}

func brokenSpecs(w *world) []broken {
	other := func(vs string) string { return strings.Replace(w.manifest(), "name: grpc-vs", "name: "+vs, 1) }
	sum := strings.Replace(other("grpc-vs-sum"), "weight: 0", "weight: 20", 1)
	huge := other("grpc-vs-huge") + strings.Repeat("# padding padding padding padding padding padding\n", 1<<20)
	return []broken{
		{name: "bad-route", spec: func(w *world) string {
			return w.specAs("bad-route", "grpc-vs", "deploy/sample/rules.yaml", "  route: nope\n")
		},
			reason: "route not found"},
		{name: "bad-subsets", spec: func(w *world) string {
			return strings.Replace(w.specAs("bad-subsets", "grpc-vs", "deploy/sample/rules.yaml", ""), "canary: v2", "canary: v9", 1)
		}, reason: `no http route holds both subsets "v1" and "v9"`},
		{name: "bad-sum", files: map[string]string{"deploy/sum.yaml": sum},
			spec: func(w *world) string { return w.specAs("bad-sum", "grpc-vs-sum", "deploy/sum.yaml", "") }, reason: "weights do not sum to 100"},
		{name: "missing", spec: func(w *world) string { return w.specAs("missing", "grpc-vs-m", "deploy/nope.yaml", "") },
			reason: "no such file"},
		{name: "escape", spec: func(w *world) string { return w.specAs("escape", "grpc-vs-e", "../../etc/passwd", "") },
			reason: "path outside the repo"},
		{name: "absolute", spec: func(w *world) string { return w.specAs("absolute", "grpc-vs-a", "/etc/passwd", "") },
			reason: "path outside the repo"},
		{name: "symlink", links: map[string]string{"deploy/link.yaml": "sample/rules.yaml"},
			spec:   func(w *world) string { return w.specAs("symlink", "grpc-vs", "deploy/link.yaml", "") },
			reason: "symbolic link"},
		{name: "binary", files: map[string]string{"deploy/bin.yaml": "\x00\x01kind: VirtualService\n"},
			spec: func(w *world) string { return w.specAs("binary", "grpc-vs-b", "deploy/bin.yaml", "") }, reason: "binary file"},
		{name: "huge", files: map[string]string{"deploy/huge.yaml": huge},
			spec: func(w *world) string { return w.specAs("huge", "grpc-vs-huge", "deploy/huge.yaml", "") }, reason: "file too large"},
		{name: "conflict-a", files: map[string]string{"deploy/c.yaml": other("grpc-vs-c")},
			spec:   func(w *world) string { return w.specAs("conflict-a", "grpc-vs-c", "deploy/c.yaml", "") },
			reason: `rollout "conflict-b" (rollouts/conflict-b.yaml:5:19)`},
		{name: "conflict-b", spec: func(w *world) string { return w.specAs("conflict-b", "grpc-vs-c", "deploy/c.yaml", "") },
			reason: `rollout "conflict-a" (rollouts/conflict-a.yaml:5:19)`},
		{name: "metadata", spec: func(w *world) string {
			return strings.Replace(w.specAs("metadata", "grpc-vs-x", "deploy/sample/rules.yaml", ""), "-plaintext "+w.gw0Addr(), "-plaintext 169.254.169.254:80", 1)
		}, reason: "169.254.169.254 is a link-local or cloud-metadata address"},
		{name: "invalid", spec: func(w *world) string {
			return strings.Replace(w.specAs("invalid", "grpc-vs-i", "deploy/sample/rules.yaml", ""), "[0, 40, 100]", "[0, 140, 100]", 1)
		}, reason: "140 is outside 0..100"},
	}
}

// pushBroken commits every broken spec and its files, as a person with the git CLI.
func (w *world) pushBroken(bs []broken) {
	work := filepath.Join(w.dir, fmt.Sprintf("person-%d", time.Now().UnixNano()))
	w.git(w.dir, "clone", "-q", w.remote, work)
	for _, b := range bs {
		for p, data := range b.files {
			write(w.t, filepath.Join(work, p), data)
		}
		for p, target := range b.links {
			if err := os.Symlink(target, filepath.Join(work, p)); err != nil {
				w.t.Fatal(err)
			}
		}
		write(w.t, filepath.Join(work, "rollouts", b.name+".yaml"), b.spec(w))
	}
	w.git(work, "add", "-A")
	w.git(work, "commit", "-q", "-m", "broken specs beside the good one")
	w.pushRebasing(work)
}

// pushRebasing pushes work's main, rebasing on what canaryd pushed meanwhile, as a person
// whose push is rejected does.
func (w *world) pushRebasing(work string) {
	w.t.Helper()
	for range 10 {
		cmd := exec.Command("git", "push", "-q", "origin", "main")
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+w.dir)
		if out, err := cmd.CombinedOutput(); err == nil {
			return
		} else if !strings.Contains(string(out), "rejected") {
			w.t.Fatalf("git push: %v\n%s", err, out)
		}
		w.git(work, "pull", "-q", "--rebase", "origin", "main")
	}
	w.t.Fatal("git push: rejected ten times")
}

func (w *world) statusOf(name string) (server.Rollout, bool) {
	code, data := w.api("GET", "/api/v1/rollouts/"+name, "", nil)
	var r server.Rollout
	if code != 200 || json.Unmarshal(data, &r) != nil {
		return r, false
	}
	return r, true
}

// expectBroken waits until every broken rollout shows Invalid with its reason.
func (w *world) expectBroken(bs []broken) {
	w.t.Helper()
	for _, b := range bs {
		w.eventually(30*time.Second, b.name+" Invalid", func() (bool, string) {
			r, ok := w.statusOf(b.name)
			if !ok {
				return false, "not listed"
			}
			text := fmt.Sprint(r.Problems)
			return r.Phase == rollout.Invalid && strings.Contains(text, b.reason), string(r.Phase) + " " + text
		})
	}
}

// TestServeIsolatesBrokenSpecsAtStart: serve starts with every broken spec beside the good
// one; each broken one is Invalid with its reason, and the good one succeeds.
func TestServeIsolatesBrokenSpecsAtStart(t *testing.T) {
	w := newWorld(t)
	bs := brokenSpecs(w)
	w.pushBroken(bs)
	w.serve()
	w.expectBroken(bs)
	w.waitPhase(90*time.Second, rollout.Succeeded)
	w.expectBroken(bs)
	_, metrics := w.api("GET", "/metrics", "", nil)
	for _, b := range bs {
		want := fmt.Sprintf(`canaryd_rollout_phase{phase="Invalid",rollout=%q} 1`, b.name)
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestServeIsolatesBrokenSpecsPushedWhileRunning: the same breakage pushed while the good
// rollout runs leaves it running to Succeeded, and each broken one Invalid.
func TestServeIsolatesBrokenSpecsPushedWhileRunning(t *testing.T) {
	w := newWorld(t)
	w.serve()
	w.waitPhase(30*time.Second, rollout.Progressing)
	bs := brokenSpecs(w)
	w.pushBroken(bs)
	w.expectBroken(bs)
	w.waitPhase(90*time.Second, rollout.Succeeded)
	if n := strings.Count(w.logText(), "reload specs"); n > 0 {
		t.Errorf("%d reload-specs warnings: a broken spec froze the reload of the others", n)
	}
}
