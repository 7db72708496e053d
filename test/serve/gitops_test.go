package serve_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/rollout"
)

// applyLag is how far behind Git the applier (Argo CD, Flux) brings the cluster.
const applyLag = 20 * time.Second

// lagApplier plays Argo CD: it polls the remote's head with the git CLI and applies each
// new weight to the API server applyLag after it first saw it, recording when.
type lagApplier struct {
	mu      sync.Mutex
	applied map[int]time.Time // canary weight -> when the applier began to apply it
}

func (a *lagApplier) at(canary int) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.applied[canary]
	return t, ok
}

func (a *lagApplier) run(ctx context.Context, w *world, doc *rollout.Document, router *istio.Router) error {
	ref := gitops.VSRef{Namespace: w.ns, Name: "grpc-vs", Host: "grpc-helloworld-py", Stable: "v1", Canary: "v2"}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	seen := rollout.CanaryAt(0)
	var timers []*time.Timer
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		out, err := exec.CommandContext(ctx, "git", "-C", w.remote, "show", "main:deploy/sample/rules.yaml").Output()
		if err != nil {
			continue
		}
		g, err := gitops.ReadWeights(out, ref)
		if err != nil || g == seen {
			continue
		}
		seen = g
		timers = append(timers, time.AfterFunc(applyLag, func() {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			start := time.Now() // canaryd may see the change before SetWeights returns
			if err := router.SetWeights(actx, doc, g); err == nil {
				a.mu.Lock()
				a.applied[g.Canary] = start
				a.mu.Unlock()
			}
		}))
	}
}

// TestGitopsWaitsForTheCluster runs canaryd in gitops mode beside an applier that lags 20s
// behind Git: no step is decided before the cluster carries the previous one and it has
// baked, and every step's bake starts when the cluster carries it, not when Git does.
func TestGitopsWaitsForTheCluster(t *testing.T) {
	w := newWorld(t)
	cfg, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w.config, strings.Replace(string(cfg), "mode: apply", "mode: gitops\n  convergeTimeout: 1m", 1))
	docs, err := rollout.Parse("spec.yaml", []byte(w.spec("")))
	if err != nil {
		t.Fatal(err)
	}
	router, err := istio.NewRouter(w.kube.Config, istio.Options{FieldManager: "argocd"})
	if err != nil {
		t.Fatal(err)
	}
	a := &lagApplier{applied: map[int]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, w, docs[0], router) }()
	t.Cleanup(func() { cancel(); <-done })

	w.serve()
	w.waitPhase(3*time.Minute, rollout.Succeeded)
	at40, ok40 := a.at(40)
	at100, ok100 := a.at(100)
	if !ok40 || !ok100 {
		t.Fatalf("the applier never applied 40%% (%v) or 100%% (%v)", ok40, ok100)
	}
	bake := docs[0].Spec.Bake()
	for _, ev := range w.history() {
		switch {
		case ev.Kind == rollout.EventIntent && ev.Weights.Canary == 100 && ev.Time.Before(at40.Add(bake)):
			t.Errorf("the step to 100%% was decided at %s, before the cluster carried 40%% (%s) and baked %s",
				ev.Time.Format(time.TimeOnly), at40.Format(time.TimeOnly), bake)
		case ev.Kind == rollout.EventStep && ev.Weights.Canary == 40 && ev.Time.Before(at40):
			t.Errorf("the 40%% step began at %s, before the cluster carried it at %s", ev.Time.Format(time.TimeOnly), at40.Format(time.TimeOnly))
		case ev.Kind == rollout.EventSucceeded && ev.Time.Before(at100.Add(docs[0].Spec.PostPromotionBake())):
			t.Errorf("Succeeded at %s, before the cluster carried 100%% (%s) and the post-promotion bake passed", ev.Time.Format(time.TimeOnly), at100.Format(time.TimeOnly))
		}
	}
	if got := w.clusterWeights(); got != rollout.CanaryAt(100) {
		t.Errorf("the cluster holds %s at the end, want 0/100", got)
	}
}
