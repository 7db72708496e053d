package serve_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/test/kubetest"
)

// applyRollouts is how many rollouts BenchmarkMassRollbackApply runs
// ($CANARYD_SCALE_APPLY_ROLLOUTS, else 1000): apart from scaleRollouts, since at the
// default rate limit 10,000 rollouts' preflights alone take minutes of the API server.
var applyRollouts = func() int {
	if n, err := strconv.Atoi(os.Getenv("CANARYD_SCALE_APPLY_ROLLOUTS")); err == nil && n > 0 {
		return n
	}
	return 1000
}()

// BenchmarkMassRollbackApply runs applyRollouts rollouts in one canaryd in apply mode
// against a real API server (envtest), takes them all to 40 % on one tick, then aborts
// every one at once through the API and reports how long until every canary is at 0 in
// Git (read with git log) and in the cluster (listed from the API server), each after the
// first abort was sent. The client's rate limit is kubernetes.qps/burst:
// $CANARYD_SCALE_QPS (default 100, canaryd's default) and twice that.
func BenchmarkMassRollbackApply(b *testing.B) {
	if testing.Short() {
		b.Skip("starts kube-apiserver and canaryd serve")
	}
	canarydBinary(b)
	qps := 100
	if q, err := strconv.Atoi(os.Getenv("CANARYD_SCALE_QPS")); err == nil && q > 0 {
		qps = q
	}
	kube := kubetest.Start(b)
	kc, err := kubetest.NewClient(kube.Config)
	if err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("n=%d/qps=%d", applyRollouts, qps), func(b *testing.B) {
		for range b.N {
			massRollbackOnce(b, kube, kc, qps)
		}
	})
}

func massRollbackOnce(b *testing.B, kube *kubetest.Env, kc *kubetest.Client, qps int) {
	n := applyRollouts
	dir := b.TempDir()
	lead := 40*time.Second + time.Duration(n)*20*time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("CANARYD_SCALE_LEAD")); err == nil {
		lead = d
	}
	s := seedScale(b, dir, n, perFile, lead)
	vss := kc.Dynamic.Resource(istio.VirtualServices).Namespace("default") // the specs' namespace
	// The app and its DestinationRule, which every rollout's preflight reads.
	app, err := os.ReadFile("../../deploy/sample/app.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rules, err := os.ReadFile("../../deploy/sample/rules.yaml")
	if err != nil {
		b.Fatal(err)
	}
	objs, err := kubetest.Decode([]byte(string(app) + "\n---\n" + string(rules)))
	if err != nil {
		b.Fatal(err)
	}
	objs = slices.DeleteFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "VirtualService" })
	created, err := kc.Create(context.Background(), objs, false)
	if err != nil {
		b.Fatal(err)
	}
	markAvailable(b, kube.Config, "default", "grpc-helloworld-py-v1", "grpc-helloworld-py-v2")
	b.Cleanup(func() {
		ctx := context.Background()
		vss.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		for _, o := range created {
			if r, err := kc.Resource(o); err == nil {
				r.Delete(ctx, o.GetName(), metav1.DeleteOptions{})
			}
		}
	})
	for i := range n {
		data, err := os.ReadFile(filepath.Join(s.work, "deploy", fmt.Sprintf("s%04d.yaml", i)))
		if err != nil {
			b.Fatal(err)
		}
		objs, err := kubetest.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range objs {
			if o.GetKind() != "VirtualService" {
				continue
			}
			o.SetNamespace("default")
			if _, err := vss.Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	kubeconfig := writeKubeconfig(b, dir, kube.Config)
	listen, cmd := startScale(b, dir, s.url, fmt.Sprintf("kubernetes: {mode: apply, kubeconfig: %s, qps: %d, burst: %d}\n",
		kubeconfig, qps, 2*qps))
	profiled := profileStorm(b, listen, s.tick, "apply-tick")
	s.waitFast(b, n, func(c scaleCommit) bool { return c.step == "2/3" }, time.Until(s.tick)+5*time.Minute)
	profiled()
	canaries := func(want int64) int {
		l, err := vss.List(context.Background(), metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		k := 0
		for _, u := range l.Items {
			if canaryWeight(u) == want {
				k++
			}
		}
		return k
	}
	for deadline := time.Now().Add(5 * time.Minute); canaries(40) < n; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d VirtualServices at 40 %% after 5 minutes", canaries(40), n)
		}
	}

	aborted := massAbort(b, listen, n)
	var inCluster time.Duration
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if canaries(0) == n {
			inCluster = time.Since(aborted)
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d VirtualServices at 0 %% 5 minutes after the aborts", canaries(0), n)
		}
	}
	backs := s.waitFast(b, n, func(c scaleCommit) bool { return c.kind == "abort" }, 5*time.Minute)
	times, _ := s.pushes(b)
	landed := s.landed(b)
	var inGit []time.Duration
	for _, c := range backs {
		inGit = append(inGit, times[landed[c.sha]].Sub(aborted))
	}
	slices.Sort(inGit)
	b.ReportMetric(inGit[len(inGit)-1].Seconds(), "rollback-git-s")
	b.ReportMetric(inCluster.Seconds(), "rollback-cluster-s")
	rss, cpu := procUsage(b, cmd.Process.Pid)
	b.ReportMetric(rss, "peak-RSS-MiB")
	b.ReportMetric(cpu, "cpu-s")
}

// canaryWeight is the weight of subset v2 in a VirtualService's first route, as the API
// server holds it.
func canaryWeight(u unstructured.Unstructured) int64 {
	routes, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	if len(routes) == 0 {
		return -1
	}
	dests, _ := routes[0].(map[string]any)["route"].([]any)
	for _, d := range dests {
		m, _ := d.(map[string]any)
		dest, _ := m["destination"].(map[string]any)
		if dest["subset"] == "v2" {
			w, _ := m["weight"].(int64)
			return w
		}
	}
	return 0
}
