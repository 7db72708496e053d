package serve_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/faultnet"
	"github.com/canarydio/canaryd/test/kubetest"
)

// sideRollout is a second rollout beside the world's, on a VirtualService of its own.
type sideRollout struct {
	name, vs, manifest string
}

func (s sideRollout) ref(w *world) gitops.VSRef {
	return gitops.VSRef{Namespace: w.ns, Name: s.vs, Host: "grpc-helloworld-py", Stable: "v1", Canary: "v2"}
}

// addSide pushes a side rollout (its manifest at weights at, its spec changed by edit) as
// a person and creates its VirtualService in the cluster.
func (w *world) addSide(s sideRollout, at rollout.Weights, edit func(spec string) string) {
	w.t.Helper()
	vs := setWeightsByHand(w.t, strings.Replace(w.manifest(), "name: grpc-vs", "name: "+s.vs, 1), at)
	objs, err := kubetest.Decode([]byte(vs))
	if err != nil {
		w.t.Fatal(err)
	}
	objs = slices.DeleteFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetName() != s.vs })
	if _, err := w.kclient.Create(context.Background(), objs, false); err != nil {
		w.t.Fatal(err)
	}
	work := filepath.Join(w.dir, "side-"+s.name)
	w.git(w.dir, "clone", "-q", w.remote, work)
	write(w.t, filepath.Join(work, s.manifest), vs)
	write(w.t, filepath.Join(work, "rollouts", s.name+".yaml"), edit(w.specAs(s.name, s.vs, s.manifest, "")))
	w.git(work, "add", "-A")
	w.git(work, "commit", "-q", "-m", "rollouts: "+s.name)
	w.pushRebasing(work)
}

// TestServeBusyRolloutBlocksNoOne: one rollout's probe is stuck on a gateway that accepts
// and never answers. A person's hand edit of another rollout still shows as Overridden
// within a poll interval or so, and an abort of the stuck rollout takes its canary to 0 in
// the cluster and in Git at once, without waiting for the probe's deadline.
func TestServeBusyRolloutBlocksNoOne(t *testing.T) {
	w := newWorld(t)
	proxy := faultnet.Start(t, w.gw0Addr())
	slow := sideRollout{name: "slow", vs: "grpc-vs-slow", manifest: "deploy/slow.yaml"}
	// It starts at 40 %, a step of its spec, and stays there: its bake outlasts the test.
	w.addSide(slow, rollout.Weights{Stable: 60, Canary: 40}, func(spec string) string {
		spec = strings.Replace(spec, "-plaintext "+w.gw0Addr(), "-plaintext "+proxy.Addr(), 1)
		spec = strings.Replace(spec, "timeout: 2s", "timeout: 10m", 1) // the check's own deadline (1m) bounds it
		return strings.Replace(spec, "bake: 2s", "bake: 10m", 1)       // it stays at 40 %
	})
	w.serve()
	w.eventually(60*time.Second, "slow at 40% in Git and the cluster", func() (bool, string) {
		g, c := w.gitWeightsOf(slow.manifest, slow.ref(w)), w.clusterWeightsOf(slow.vs)
		r, _ := w.statusOf(slow.name)
		return g.Canary == 40 && c == g && r.Phase == rollout.Progressing, "Git " + g.String() + ", cluster " + c.String() + ": " + r.Message
	})
	w.waitPhase(60*time.Second, rollout.Succeeded)

	proxy.Stall()
	select {
	case <-proxy.Waiting():
	case <-time.After(30 * time.Second):
		t.Fatal("the slow rollout's probe never called into the stall")
	}
	stuck := time.Now()

	edit := w.handEdit(rollout.Weights{Stable: 90, Canary: 10}, "a person sets 10% by hand")
	edited := time.Now()
	r := w.waitPhase(15*time.Second, rollout.Overridden)
	t.Logf("hand edit %.12s shown as Overridden %s after its push (poll interval 1s): %s", edit, time.Since(edited), r.Message)

	aborted := time.Now()
	// An action is answered once it is recorded, never after the rollout's probe.
	code, body := w.apiWithin(10*time.Second, "POST", "/api/v1/rollouts/"+slow.name+"/abort", w.token, map[string]string{"actor": "oncall", "reason": "probe hangs"})
	if code != 200 {
		t.Fatalf("abort: %d %s", code, body)
	}
	answered := time.Since(aborted)
	w.eventually(20*time.Second, "slow at 0% in the cluster and in Git", func() (bool, string) {
		g, c := w.gitWeightsOf(slow.manifest, slow.ref(w)), w.clusterWeightsOf(slow.vs)
		return g.Canary == 0 && c.Canary == 0, "Git " + g.String() + ", cluster " + c.String()
	})
	landed := time.Since(aborted)
	newest := w.git(w.remote, "log", "-1", "--format=%(trailers:key=Rollout,valueonly) %(trailers:key=Rollout-Kind,valueonly)", "main", "--", slow.manifest)
	if got := strings.Join(strings.Fields(newest), " "); got != "slow abort" {
		t.Errorf("the newest commit of %s has trailers %q, want rollout slow, kind abort", slow.manifest, got)
	}
	t.Logf("abort answered in %s, at 0%% in the cluster and in Git %s after it was asked for, %s after the probe got stuck (its deadline: 1m)",
		answered, landed, time.Since(stuck))
}
