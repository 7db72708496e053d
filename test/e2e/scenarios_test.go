package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox"
	"github.com/canarydio/canaryd/sandbox/gateway"
	"github.com/canarydio/canaryd/sandbox/traffic"
)

// limit is how long a scenario may take, start to exit (the issue: under 3 minutes).
const limit = 3 * time.Minute

func TestDemoSuccess(t *testing.T) {
	d := startDemo(t, "--scenario", "success", "--until-done")
	seedCommandAnswers(t, d)
	split := measureSplitAt40(t, d)
	if err := d.wait(t, limit); err != nil {
		t.Fatalf("canaryd demo --scenario success: %v", err)
	}
	if !strings.Contains(d.output(), "scenario success ended as it should") {
		t.Errorf("no success line in the output")
	}
	log := gitLog(t, d.remote())
	for k, w := range map[int]string{1: "v1=100,v2=0", 2: "v1=60,v2=40", 3: "v1=0,v2=100"} {
		if _, ok := stepCommit(t, log, k, w); !ok {
			t.Errorf("no commit of step %d/3 in:\n%v", k, log)
		}
	}
	if w := weightsAt(t, d.remote(), "main"); w != rollout.CanaryAt(100) {
		t.Errorf("rules.yaml at the end: %s, want 0/100", w)
	}
	v2, n := split[1], split[0]+split[1]
	if n < 1000 {
		t.Fatalf("only %d calls were routed at 60/40; want 1000", n)
	}
	if v2*100 < 35*n || v2*100 > 45*n {
		t.Errorf("at 40%%: %d of %d calls to v2 (%.1f%%), want 40±5%%", v2, n, 100*float64(v2)/float64(n))
	}
	t.Logf("at 40%%: %d of %d calls to v2 (%.1f%%)", v2, n, 100*float64(v2)/float64(n))
}

// measureSplitAt40 waits until the gateway routes by 60/40, then sends calls from 16
// workers and counts, of the calls routed by 60/40 (the gateway says so in a header),
// how many v1 and v2 answered, until 1000 are counted or the step moves on.
func measureSplitAt40(t *testing.T, d *demo) [2]int {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var st gateway.Status
		if err := getJSON("http://"+d.metrics+"/weights", &st); err == nil && st.Canary == 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never routed at 40%%:\n%s", d.output())
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("canaryd demo exited (%v) before the gateway routed at 40%%", err)
		case <-tick.C:
		}
	}
	cc, err := grpc.NewClient(d.gateway, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var v1, v2, counted atomic.Int64
	var moved atomic.Bool
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for counted.Load() < 1000 && !moved.Load() && ctx.Err() == nil {
				r, err := traffic.SayHello(ctx, cc, "Jack")
				if err != nil || strings.Join(r.Header.Get(gateway.WeightsHeader), "") != "60/40" {
					moved.Store(err == nil)
					continue
				}
				if counted.Add(1) > 1000 {
					return
				}
				switch {
				case strings.Contains(r.From, "-v1-"):
					v1.Add(1)
				case strings.Contains(r.From, "-v2-"):
					v2.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return [2]int{int(v1.Load()), int(v2.Load())}
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func TestDemoFail(t *testing.T) {
	d := startDemo(t, "--scenario", "fail", "--until-done")
	if err := d.wait(t, limit); err != nil {
		t.Fatalf("canaryd demo --scenario fail: %v", err)
	}
	log := gitLog(t, d.remote())
	if _, ok := stepCommit(t, log, 2, "v1=60,v2=40"); !ok {
		t.Errorf("no commit of the 40%% step")
	}
	if _, ok := stepCommit(t, log, 3, "v1=0,v2=100"); ok {
		t.Errorf("the failing canary reached 100%%")
	}
	head := log[0]
	if head.author != "canaryd" || head.trailers[gitops.TrailerReason] == "" || head.trailers[gitops.TrailerWeights] != "v1=100,v2=0" {
		t.Errorf("head %.12s by %s with trailers %v; want canaryd's rollback with %s", head.sha, head.author, head.trailers, gitops.TrailerReason)
	}
	if w := weightsAt(t, d.remote(), "main"); w != rollout.CanaryAt(0) {
		t.Errorf("rules.yaml at the end: %s, want 100/0", w)
	}
}

func TestDemoRevert(t *testing.T) {
	d := startDemo(t, "--scenario", "revert", "--until-done")
	if err := d.wait(t, limit); err != nil {
		t.Fatalf("canaryd demo --scenario revert: %v", err)
	}
	log := gitLog(t, d.remote())
	forty, ok := stepCommit(t, log, 2, "v1=60,v2=40")
	if !ok {
		t.Fatalf("no commit of the 40%% step")
	}
	head := log[0]
	if head.author != sandbox.PersonName || !strings.HasPrefix(head.subject, "Revert ") {
		t.Fatalf("newest commit %.12s by %s %q; want the person's revert, with canaryd pushing nothing after it", head.sha, head.author, head.subject)
	}
	body, err := exec.Command("git", "-C", d.remote(), "log", "-1", "--format=%B", head.sha).Output()
	if err != nil || !strings.Contains(string(body), "This reverts commit "+forty.sha) {
		t.Errorf("the revert's message %q does not name the 40%% commit %s (%v)", body, forty.sha, err)
	}
	if w := weightsAt(t, d.remote(), "main"); w != rollout.CanaryAt(0) {
		t.Errorf("rules.yaml at the end: %s, want 100/0", w)
	}
}

var seedReply = regexp.MustCompile(`(?s)^\{\s*"message": "Hello, Jack! I'm from grpc-helloworld-py-v[12]-[0-9a-z-]+!"\s*\}\s*$`)

// seedCommandAnswers runs the seed tutorial's own command, the grpcurl CLI, through the
// demo's gateway, and checks it answers as the seed's pods do.
func seedCommandAnswers(t *testing.T, d *demo) {
	t.Helper()
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Fatalf("the grpcurl CLI is not installed (run test/deps/grpcurl.sh): %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(grpcurl, "-d", `{"name":"Jack"}`, "-plaintext", d.gateway, "helloworld.Greeter/SayHello").CombinedOutput()
		if err == nil {
			if !seedReply.Match(out) {
				t.Errorf("grpcurl through the gateway printed %q, want Hello, Jack! I'm from grpc-helloworld-py-v1-…!", out)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("grpcurl through the gateway: %v\n%s", err, out)
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-t.Context().Done():
			return
		}
	}
}
