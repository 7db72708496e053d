package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/promtest"
)

// TestSeedMatchesDeploySample keeps the embedded copies equal to deploy/sample and
// deploy/sample-gateway-api.
func TestSeedMatchesDeploySample(t *testing.T) {
	for _, f := range []string{"sample/app.yaml", "sample/rules.yaml", "sample-gateway-api/services.yaml",
		"sample-gateway-api/gateway.yaml", "sample-gateway-api/route.yaml"} {
		want, err := os.ReadFile(filepath.Join("..", "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := seedFS.ReadFile("seed/deploy/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("sandbox/seed/deploy/%s differs from deploy/%s: copy it again", f, f)
		}
	}
}

// TestGRPCRouteSample: the GRPCRoute sample's spec validates, names the route the gateway
// follows, and its manifest holds that route at 100/0.
func TestGRPCRouteSample(t *testing.T) {
	s, err := SampleFor(RouteGRPCRoute)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := rollout.Parse(RolloutFile, s.RolloutSpec("127.0.0.1:18080", DefaultTimings))
	if err != nil {
		t.Fatal(err)
	}
	if got := gitops.RefOf(docs[0]); got != s.Ref {
		t.Errorf("the spec names %+v, the gateway follows %+v", got, s.Ref)
	}
	data, err := seedFS.ReadFile("seed/" + s.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := gitops.ReadWeights(data, s.Ref); err != nil || w != rollout.CanaryAt(0) {
		t.Errorf("seed %s holds %s, %v; want 100/0", s.Manifest, w, err)
	}
	if _, err := SampleFor("ingress"); err == nil {
		t.Error("an unknown route is accepted")
	}
}

func TestRolloutSpecValidates(t *testing.T) {
	docs, err := rollout.Parse(RolloutFile, SampleVirtualService.RolloutSpecPinned("127.0.0.1:18080", DefaultTimings, "127.0.0.1:50051", "127.0.0.1:50052"))
	if err != nil {
		t.Fatalf("the demo's spec:\n%v", err)
	}
	if len(docs) != 1 || docs[0].Name() != RolloutName {
		t.Fatalf("docs %v", docs)
	}
	s := docs[0].Spec
	if got := s.Probe.Command; got == nil || !strings.Contains(s.Probe.GRPCurl, "127.0.0.1:18080") {
		t.Errorf("probe %q does not aim at the gateway", s.Probe.GRPCurl)
	}
	if s.Probe.CanaryAddress != "127.0.0.1:50052" || s.Probe.StableAddress != "127.0.0.1:50051" {
		t.Errorf("probe pinned to %q (canary) and %q (stable)", s.Probe.CanaryAddress, s.Probe.StableAddress)
	}
	if m := s.Analysis.Metrics; len(m) != 2 || m[0].Template != rollout.TemplateErrorsVsStable || m[1].Template != rollout.TemplateLatencyVsStable {
		t.Errorf("the demo's gates: %+v", m)
	}
	if s.Schedule != "@every 5s" || len(s.Steps) != 3 || s.Steps[1] != 40 || s.Analysis.FailureLimit != 2 {
		t.Errorf("spec %+v", s)
	}
}

func TestInstanceName(t *testing.T) {
	a, b := InstanceName("v1"), InstanceName("v1")
	if a == b || !strings.HasPrefix(a, "grpc-helloworld-py-v1-") || len(a) != len("grpc-helloworld-py-v1-")+11 {
		t.Errorf("InstanceName: %q, %q", a, b)
	}
}

// startWorld starts a world without canaryd serve, on free ports, for a test.
func startWorld(t *testing.T, o Options) *World {
	t.Helper()
	if testing.Short() {
		t.Skip("starts greeters, a gateway, git and Prometheus; skipped with -short")
	}
	if _, err := promtest.Binary(); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("the git CLI is not installed (run test/deps/git.sh): %v", err)
	}
	if o.Workdir == "" {
		o.Workdir = t.TempDir()
	}
	o.Gateway, o.Listen = "127.0.0.1:0", freePort(t)
	w, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return w
}

func freePort(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		<-tick.C
	}
}

// TestWorldWithoutServe checks everything but canaryd: the seeded remote, the gateway on
// the seed's weights, traffic through it, and Prometheus seeing Istio's metrics; then
// that Close leaves nothing listening.
func TestWorldWithoutServe(t *testing.T) {
	w := startWorld(t, Options{NoServe: true, Rate: 100})
	log, err := Log(t.Context(), w.Remote)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 1 || log[0].ByCanaryd() || !strings.Contains(log[0].Author, "seed@example.com") {
		t.Fatalf("seeded log: %+v", log)
	}
	if got, err := WeightsAt(t.Context(), w.Remote, "main"); err != nil || got != rollout.CanaryAt(0) {
		t.Fatalf("seeded weights %v, %v", got, err)
	}
	for _, f := range []string{RolloutFile, "deploy/sample/app.yaml"} {
		if _, err := gitOutput(t.Context(), w.Remote, seedAuthor, "cat-file", "-e", "main:"+f); err != nil {
			t.Errorf("%s not seeded: %v", f, err)
		}
	}
	waitFor(t, 20*time.Second, "no traffic answered by v1", func() bool {
		return w.Traffic.Snapshot().Total.ByInstance[w.V1.Instance()] >= 50
	})
	if s := w.Traffic.Snapshot(); s.Total.ByInstance[w.V2.Instance()] != 0 {
		t.Errorf("v2 answered at 100/0: %+v", s.Total)
	}
	q := `sum(istio_requests_total{reporter="destination",destination_service_name="grpc-helloworld-py",destination_version="v1",grpc_response_status="0"})`
	waitFor(t, 30*time.Second, "Prometheus has no v1 requests", func() bool {
		return promValue(t, w.Prometheus.URL, q) > 0
	})
	// The demo's Prometheus evaluates the alerts deploy/monitoring ships.
	resp, err := http.Get(w.Prometheus.URL + "/api/v1/rules?type=alert")
	if err != nil {
		t.Fatal(err)
	}
	rules, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, alert := range []string{"CanarydRolledBack", "CanarydRolloutStuck", "CanarydInvalidSpec", "CanarydGitPushFailing", "CanarydNoLeader"} {
		if !strings.Contains(string(rules), `"name":"`+alert+`"`) {
			t.Errorf("the demo's Prometheus does not evaluate %s: %s", alert, rules)
		}
	}
	addrs := []string{w.Gateway.Addr(), w.Gateway.MetricsAddr(), w.Prometheus.Addr}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still listens after Close", a)
		}
	}
}

// promValue returns the value of an instant query, or -1 when it has none.
func promValue(t *testing.T, base, q string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) != 1 {
		return -1
	}
	str, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return -1
	}
	return v
}

func TestWorkdirInUse(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "remote.git"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{Workdir: dir, NoServe: true})
	if err == nil || !strings.Contains(err.Error(), "already holds a demo") {
		t.Fatalf("Start in a used workdir: %v", err)
	}
}
