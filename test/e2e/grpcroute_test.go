package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox"
)

// grpcRouteWeights reads the demo's GRPCRoute weights at rev with the git CLI.
func grpcRouteWeights(t *testing.T, remote, rev string) rollout.Weights {
	t.Helper()
	s := sandbox.SampleGRPCRoute
	data, err := exec.Command("git", "-C", remote, "show", rev+":"+s.Manifest).Output()
	if err != nil {
		t.Fatalf("git show %s:%s: %v", rev, s.Manifest, err)
	}
	w, err := gitops.ReadWeights(data, s.Ref)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDemoGRPCRouteSuccess plays the success scenario on the GRPCRoute: the seed's grpcurl
// command answers through the gateway, the route goes 0 → 40 → 100 in Git, and the demo
// exits 0.
func TestDemoGRPCRouteSuccess(t *testing.T) {
	d := startDemo(t, "--route", "grpcroute", "--scenario", "success", "--until-done")
	seedCommandAnswers(t, d)
	if err := d.wait(t, limit); err != nil {
		t.Fatalf("canaryd demo --route grpcroute --scenario success: %v", err)
	}
	if !strings.Contains(d.output(), "scenario success ended as it should") {
		t.Errorf("no success line in the output")
	}
	log := gitLog(t, d.remote())
	for k, w := range map[int]string{
		1: "grpc-helloworld-py-v1=100,grpc-helloworld-py-v2=0",
		2: "grpc-helloworld-py-v1=60,grpc-helloworld-py-v2=40",
		3: "grpc-helloworld-py-v1=0,grpc-helloworld-py-v2=100",
	} {
		if _, ok := stepCommit(t, log, k, w); !ok {
			t.Errorf("no commit of step %d/3 in:\n%v", k, log)
		}
	}
	if w := grpcRouteWeights(t, d.remote(), "main"); w != rollout.CanaryAt(100) {
		t.Errorf("route.yaml at the end: %s, want 0/100", w)
	}
	if out, err := exec.Command("git", "-C", d.remote(), "show", "main:deploy/sample/rules.yaml").CombinedOutput(); err == nil {
		t.Errorf("the GRPCRoute demo seeded the VirtualService's rules.yaml too:\n%s", out)
	}
}

// TestDemoGRPCRouteFail: a canary Service failing a fifth of its calls is rolled back at
// 40%, the errors gate reading its calls and stable's by destination_service_name.
func TestDemoGRPCRouteFail(t *testing.T) {
	d := startDemo(t, "--route", "grpcroute", "--scenario", "fail", "--until-done")
	if err := d.wait(t, limit); err != nil {
		t.Fatalf("canaryd demo --route grpcroute --scenario fail: %v", err)
	}
	log := gitLog(t, d.remote())
	if _, ok := stepCommit(t, log, 2, "grpc-helloworld-py-v1=60,grpc-helloworld-py-v2=40"); !ok {
		t.Errorf("no commit of the 40%% step")
	}
	head := log[0]
	if why := head.trailers["Rollout-Reason"]; head.author != "canaryd" || !strings.Contains(why, "grpc-errors-vs-stable") || !strings.Contains(why, "UNAVAILABLE") {
		t.Errorf("head %.12s by %s with trailers %v; want canaryd's rollback by the errors gate, naming UNAVAILABLE", head.sha, head.author, head.trailers)
	}
	if w := grpcRouteWeights(t, d.remote(), "main"); w != rollout.CanaryAt(0) {
		t.Errorf("route.yaml at the end: %s, want 100/0", w)
	}
}
