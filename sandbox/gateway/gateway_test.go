package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/greeter"
	"github.com/canarydio/canaryd/sandbox/traffic"
)

const manifest = "deploy/sample/rules.yaml"

var ref = gitops.VSRef{Namespace: "default", Name: "grpc-vs", Host: "grpc-helloworld-py", Stable: "v1", Canary: "v2"}

// git runs the git CLI in dir as a person would.
func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Pat Person", "GIT_AUTHOR_EMAIL=pat@example.com",
		"GIT_COMMITTER_NAME=Pat Person", "GIT_COMMITTER_EMAIL=pat@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// remote is a bare repository seeded with the sample's rules.yaml, and a person's clone.
type remote struct {
	url   string
	clone string
}

func newRemote(t testing.TB, w rollout.Weights) *remote {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("the git CLI is not installed (run test/deps/git.sh): %v", err)
	}
	dir := t.TempDir()
	bare := filepath.Join(dir, "remote.git")
	git(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	r := &remote{url: "file://" + bare, clone: filepath.Join(dir, "person")}
	git(t, dir, "clone", "-q", bare, r.clone)
	git(t, r.clone, "checkout", "-q", "-b", "main")
	data, err := os.ReadFile("../../deploy/sample/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r.write(t, data, w, "seed the sample's rules")
	return r
}

// write commits data with weights w as rules.yaml and pushes it.
func (r *remote) write(t testing.TB, data []byte, w rollout.Weights, msg string) {
	t.Helper()
	if w.Valid() {
		var err error
		if data, err = gitops.SetWeights(data, ref, w); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(r.clone, manifest)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, r.clone, "add", "-A")
	git(t, r.clone, "commit", "-q", "-m", msg)
	git(t, r.clone, "push", "-q", "origin", "main")
}

func (r *remote) setWeights(t *testing.T, w rollout.Weights) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.clone, manifest))
	if err != nil {
		t.Fatal(err)
	}
	r.write(t, data, w, "move to "+w.String())
}

func startGreeter(t testing.TB, instance string, errRate float64) (*greeter.Server, string) {
	t.Helper()
	srv, err := greeter.NewServer(greeter.Options{Instance: instance, ErrorRate: errRate, Reflection: true})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("greeter %s: %v", instance, err)
		}
	})
	return srv, lis.Addr().String()
}

type world struct {
	remote *remote
	v1, v2 *greeter.Server
	gw     *Gateway
	cc     *grpc.ClientConn
}

// newWorld starts two greeters and a gateway following a new remote at w.
func newWorld(t testing.TB, w rollout.Weights, v2ErrRate float64, seed uint64) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("starts greeters, a gateway and a git remote; skipped with -short")
	}
	wd := &world{remote: newRemote(t, w)}
	var a1, a2 string
	wd.v1, a1 = startGreeter(t, "grpc-helloworld-py-v1-test", 0)
	wd.v2, a2 = startGreeter(t, "grpc-helloworld-py-v2-test", v2ErrRate)
	gw, err := Start(t.Context(), Options{
		Listen: "127.0.0.1:0", Metrics: "127.0.0.1:0",
		Stable: Backend{Subset: "v1", Addr: a1}, Canary: Backend{Subset: "v2", Addr: a2},
		Git:     Git{URL: wd.remote.url, Manifest: manifest, Ref: ref, CacheDir: t.TempDir()},
		Refresh: 100 * time.Millisecond, Service: "grpc-helloworld-py", Seed: seed,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			t.Errorf("close gateway: %v", err)
		}
	})
	wd.gw = gw
	cc, err := grpc.NewClient(gw.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	wd.cc = cc
	return wd
}

// split makes n calls and counts the answers by instance, checking that each reply's
// headers name the subset that answered.
func (wd *world) split(t *testing.T, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		r, err := traffic.SayHello(t.Context(), wd.cc, "Jack")
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		got[r.From]++
		if sub := r.Header.Get(SubsetHeader); len(sub) != 1 || !strings.Contains(r.From, "-"+sub[0]+"-") {
			t.Fatalf("reply from %s carries %s %v", r.From, SubsetHeader, sub)
		}
	}
	return got
}

// TestSplitFollowsWeights checks the statistical split: with a fixed seed the sequence of
// picks is repeatable, and 1000 calls at 60/40 send 40±5% to v2 (at 40%, 1000 fair picks
// stray further than 5 points with probability about 0.1%).
func TestSplitFollowsWeights(t *testing.T) {
	tests := []struct {
		w      rollout.Weights
		lo, hi int // calls to v2 out of 1000
	}{
		{rollout.CanaryAt(0), 0, 0},
		{rollout.CanaryAt(40), 350, 450},
		{rollout.CanaryAt(100), 1000, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.w.String(), func(t *testing.T) {
			wd := newWorld(t, tt.w, 0, 42)
			got := wd.split(t, 1000)
			v2 := got["grpc-helloworld-py-v2-test"]
			if v2 < tt.lo || v2 > tt.hi || got["grpc-helloworld-py-v1-test"]+v2 != 1000 {
				t.Errorf("at %s: %v, want %d..%d of 1000 to v2", tt.w, got, tt.lo, tt.hi)
			}
		})
	}
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		<-tick.C
	}
}

func TestFollowsCommitsAndKeepsLastGoodWeights(t *testing.T) {
	wd := newWorld(t, rollout.CanaryAt(0), 0, 1)
	if got := wd.split(t, 20); got["grpc-helloworld-py-v1-test"] != 20 {
		t.Fatalf("at 100/0: %v", got)
	}
	wd.remote.setWeights(t, rollout.CanaryAt(100))
	head := git(t, wd.remote.clone, "rev-parse", "HEAD")
	waitFor(t, 10*time.Second, "the gateway did not follow the commit to 0/100", func() bool {
		w, commit := wd.gw.Weights()
		return w == rollout.CanaryAt(100) && commit == head
	})
	if got := wd.split(t, 20); got["grpc-helloworld-py-v2-test"] != 20 {
		t.Fatalf("at 0/100: %v", got)
	}
	// A broken manifest is not routed by: the last good weights stay.
	wd.remote.write(t, []byte("not: [valid yaml\n"), rollout.Weights{}, "break rules.yaml")
	broken := git(t, wd.remote.clone, "rev-parse", "HEAD")
	waitFor(t, 10*time.Second, "the follower did not fetch the broken commit", func() bool {
		return wd.gw.Status().Fetched == broken
	})
	st := getWeights(t, wd.gw)
	if !strings.Contains(st.Error, "does not parse") {
		t.Errorf("/weights error %q, want the manifest's parse error", st.Error)
	}
	st.Error = ""
	if d := cmp.Diff(Status{Stable: 0, Canary: 100, Commit: head, Fetched: broken}, st, cmpIgnoreRead); d != "" {
		t.Errorf("/weights after a broken commit (-want +got):\n%s", d)
	}
	if got := wd.split(t, 20); got["grpc-helloworld-py-v2-test"] != 20 {
		t.Fatalf("after a broken commit: %v", got)
	}
}

var cmpIgnoreRead = cmp.Comparer(func(a, b time.Time) bool { return true })

func getWeights(t *testing.T, gw *Gateway) Status {
	t.Helper()
	resp, err := http.Get("http://" + gw.MetricsAddr() + "/weights")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMetricsCountFailuresByGRPCStatus(t *testing.T) {
	wd := newWorld(t, rollout.CanaryAt(100), 0.5, 7)
	codesSeen := map[codes.Code]int{}
	for range 10 {
		_, err := traffic.SayHello(t.Context(), wd.cc, "Jack")
		codesSeen[status.Code(err)]++
	}
	if d := cmp.Diff(map[codes.Code]int{codes.OK: 5, codes.Unavailable: 5}, codesSeen); d != "" {
		t.Fatalf("codes through the gateway (-want +got):\n%s", d)
	}
	got := scrape(t, "http://"+wd.gw.MetricsAddr()+"/metrics")
	want := map[string]float64{ // both proxies see every call the backend answered
		`destination v1 0 200 -`:  0, // touched at start, so a first call is an increase
		`destination v2 0 200 -`:  5,
		`destination v2 14 200 -`: 5,
		`source v1 0 200 -`:       0,
		`source v2 0 200 -`:       5,
		`source v2 14 200 -`:      5,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("istio_requests_total by version, grpc_response_status, response_code (-want +got):\n%s", d)
	}
}

// TestMetricsReportUndeliveredCallsAsTheGateway stops the canary: its proxy sees nothing,
// so only the gateway's source series count the failures, with Envoy's response flags.
func TestMetricsReportUndeliveredCallsAsTheGateway(t *testing.T) {
	wd := newWorld(t, rollout.CanaryAt(100), 0, 7)
	wd.v2.Stop()
	for range 4 {
		if _, err := traffic.SayHello(t.Context(), wd.cc, "Jack"); status.Code(err) != codes.Unavailable {
			t.Fatalf("a call to a stopped canary: %v, want UNAVAILABLE", err)
		}
	}
	got := scrape(t, "http://"+wd.gw.MetricsAddr()+"/metrics")
	undelivered := 0.0
	for key, n := range got {
		switch {
		case strings.HasPrefix(key, "destination v2 14"):
			t.Errorf("the stopped canary's own proxy reported %v calls (%s)", n, key)
		case key == "source v2 14 503 UF" || key == "source v2 14 503 UH":
			undelivered += n
		}
	}
	if undelivered != 4 {
		t.Errorf("the gateway reported %v undelivered calls, want 4: %v", undelivered, got)
	}
}

// scrape reads istio_requests_total from a /metrics page, keyed by "reporter
// destination_version grpc_response_status response_code response_flags", checking Istio's
// other labels.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	fam, ok := fams["istio_requests_total"]
	if !ok {
		t.Fatalf("no istio_requests_total in:\n%s", body)
	}
	out := map[string]float64{}
	for _, m := range fam.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["destination_service_name"] != "grpc-helloworld-py" || l["request_protocol"] != "grpc" {
			t.Errorf("series with unexpected labels: %v", l)
		}
		key := fmt.Sprintf("%s %s %s %s %s", l["reporter"], l["destination_version"], l["grpc_response_status"], l["response_code"], l["response_flags"])
		out[key] = m.GetCounter().GetValue()
	}
	return out
}

// TestStreamsPassThrough checks a bidirectional stream (server reflection, which grpcurl
// and the probe use) through the gateway.
func TestStreamsPassThrough(t *testing.T) {
	wd := newWorld(t, rollout.CanaryAt(40), 0, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(wd.cc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
		}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		if !strings.Contains(strings.Join(names, " "), greeter.ServiceName) {
			t.Fatalf("services through the gateway: %v", names)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend: %v, want EOF", err)
	}
}

func TestStartFailsWithoutWeights(t *testing.T) {
	if testing.Short() {
		t.Skip("uses git; skipped with -short")
	}
	_, err := Start(t.Context(), Options{
		Listen: "127.0.0.1:0", Metrics: "127.0.0.1:0",
		Git: Git{URL: "file://" + filepath.Join(t.TempDir(), "missing.git"), Manifest: manifest, Ref: ref, CacheDir: t.TempDir()},
	})
	if err == nil || !strings.Contains(err.Error(), "gateway:") {
		t.Fatalf("Start on a missing remote: %v", err)
	}
}
