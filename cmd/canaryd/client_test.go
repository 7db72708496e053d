package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// fakeSource is a hand-written server.Source holding two rollouts; it records actions.
type fakeSource struct {
	mu      sync.Mutex
	rs      map[string]*server.Rollout
	history map[string][]rollout.Event // oldest first
	acts    []string                   // "action name actor reason"
}

func newFakeSource() *fakeSource {
	now := time.Now().UTC().Truncate(time.Second)
	f := &fakeSource{rs: map[string]*server.Rollout{}, history: map[string][]rollout.Event{}}
	f.rs["grpc-helloworld-py"] = &server.Rollout{Name: "grpc-helloworld-py", Phase: rollout.Progressing, Run: 1, Step: 2, Steps: 3,
		Weights: rollout.CanaryAt(40), Stable: "v1", Canary: "v2", Commit: "4f1c2a9d0e7b5c3a1f2e4d6c8b0a9e7d5c3b1a2f",
		NextTick: now.Add(time.Hour), Message: "step 2/3 at 60/40",
		LastVerdict: &rollout.Verdict{Gate: "prometheus", Result: rollout.Fail, Time: now.Add(-time.Minute), Reason: "success rate 0.91 below 0.99",
			Evidence: []rollout.Evidence{{Query: `sum(rate(x[1m]))`, Value: 0.91, Threshold: ">= 0.99", Samples: 57}}}}
	f.rs["broken"] = &server.Rollout{Name: "broken", Phase: rollout.Invalid,
		Problems: []rollout.Problem{{File: "rollouts/broken.yaml", Line: 11, Col: 14, Field: "spec.steps[1]", Msg: "140 is outside 0..100"}}}
	for i := 1; i <= 7; i++ {
		ev := rollout.Event{Seq: uint64(i), Time: now.Add(time.Duration(i-8) * time.Minute), Rollout: "grpc-helloworld-py",
			Kind: rollout.EventVerdict, Run: 1, Step: 1, Weights: rollout.CanaryAt(40), Commit: "4f1c2a9d0e7b5c3a",
			Verdict: &rollout.Verdict{Gate: "probe", Result: rollout.Pass}}
		if i == 1 {
			ev.Kind, ev.Verdict, ev.Step, ev.Weights = rollout.EventStarted, nil, 0, rollout.CanaryAt(0)
		}
		f.history["grpc-helloworld-py"] = append(f.history["grpc-helloworld-py"], ev)
	}
	return f
}

func (f *fakeSource) Rollouts(context.Context) ([]server.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []server.Rollout{*f.rs["broken"], *f.rs["grpc-helloworld-py"]}, nil
}

func (f *fakeSource) Rollout(_ context.Context, name string) (server.Rollout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.rs[name]; ok {
		return *r, nil
	}
	return server.Rollout{}, server.ErrNotFound
}

func (f *fakeSource) History(_ context.Context, name string, before uint64, limit int) ([]rollout.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.rs[name]; !ok {
		return nil, server.ErrNotFound
	}
	var out []rollout.Event
	h := f.history[name]
	for i := len(h) - 1; i >= 0 && len(out) < limit; i-- {
		if before == 0 || h[i].Seq < before {
			out = append(out, h[i])
		}
	}
	return out, nil
}

func (f *fakeSource) Act(_ context.Context, name, action, actor, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rs[name]
	if !ok {
		return server.ErrNotFound
	}
	switch {
	case action == "pause" && r.Phase == rollout.Progressing:
		r.Phase = rollout.Paused
	case action == "abort" && r.Phase != rollout.Invalid:
		r.Phase, r.Weights = rollout.Aborted, rollout.CanaryAt(0)
	default:
		return fmt.Errorf("%s in phase %s: %w", action, r.Phase, server.ErrRefused)
	}
	f.acts = append(f.acts, strings.Join([]string{action, name, actor, reason}, " "))
	return nil
}

func (f *fakeSource) Ready(context.Context) error { return nil }

const cliToken = "cli-test-token-0123456789"

// startAPI serves the real API handler over src on a loopback port and returns its URL and
// a token file.
func startAPI(t *testing.T, src *fakeSource) (url, tokenFile string) {
	t.Helper()
	srv := httptest.NewServer(server.New(server.Options{Source: src, Token: []byte(cliToken)}).Handler())
	t.Cleanup(srv.Close)
	tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(cliToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL, tokenFile
}

func TestStatusCommand(t *testing.T) {
	src := newFakeSource()
	url, _ := startAPI(t, src)

	code, out, errOut := runCmd("status", "--server", url)
	if code != 0 {
		t.Fatalf("status: exit %d, %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^NAME\s+PHASE\s+STEP\s+WEIGHTS\s+LAST-VERDICT\s+NEXT-TICK\s+MESSAGE$`).MatchString(lines[0]) {
		t.Fatalf("status table:\n%s", out)
	}
	wantRow := regexp.MustCompile(`^grpc-helloworld-py\s+Progressing\s+2/3\s+60/40\s+\[████████░░░░░░░░░░░░\]\s+fail prometheus 1m\d+s ago\s+in (59m\d+s|1h0m0s)\s+step 2/3 at 60/40$`)
	if !wantRow.MatchString(lines[2]) {
		t.Errorf("row %q does not match %s", lines[2], wantRow)
	}
	if !regexp.MustCompile(`^broken\s+Invalid\s+-\s+-\s+-\s+-`).MatchString(lines[1]) {
		t.Errorf("row %q", lines[1])
	}

	code, out, _ = runCmd("status", "grpc-helloworld-py", "--server", url)
	for _, w := range []string{"commit:  4f1c2a9d0e7b5c3a1f2e4d6c8b0a9e7d5c3b1a2f", "last verdict: fail prometheus", "sum(rate(x[1m])) · value 0.91 · threshold >= 0.99 · 57 samples"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("status NAME: exit %d, lacks %q:\n%s", code, w, out)
		}
	}
	if code, out, _ := runCmd("status", "broken", "--server", url); code != 0 || !strings.Contains(out, "problem: rollouts/broken.yaml:11:14: spec.steps[1]: 140 is outside 0..100") {
		t.Errorf("status of an invalid rollout: exit %d:\n%s", code, out)
	}

	want, _ := src.Rollout(context.Background(), "grpc-helloworld-py")
	code, out, _ = runCmd("status", "grpc-helloworld-py", "-o", "json", "--server", url)
	var got server.Rollout
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("-o json: exit %d:\n%s", code, out)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("-o json (-want +got):\n%s", diff)
	}

	code, out, _ = runCmd("status", "-o", "yaml", "--server", url)
	var y struct {
		Rollouts []struct {
			Name    string
			Phase   string
			Weights rollout.Weights
		}
	}
	if code != 0 || yaml.Unmarshal([]byte(out), &y) != nil || len(y.Rollouts) != 2 || y.Rollouts[1].Name != "grpc-helloworld-py" || y.Rollouts[1].Weights.Canary != 40 {
		t.Errorf("-o yaml: exit %d, %+v:\n%s", code, y, out)
	}
}

func TestClientErrors(t *testing.T) {
	url, tokenFile := startAPI(t, newFakeSource())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not-the-token"), 0o600)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown rollout", []string{"status", "nope", "--server", url}, 1, "404 Not Found: rollout \"nope\": no such rollout"},
		{"unknown rollout's history", []string{"history", "nope", "--server", url}, 1, "404"},
		{"unreachable", []string{"status", "--server", dead}, 1, "cannot reach canaryd at " + dead},
		{"credentials in the URL are redacted", []string{"status", "--server", "http://user:pw@" + l.Addr().String()}, 1, "http://user:xxxxx@"},
		{"bad output", []string{"status", "-o", "xml", "--server", url}, 2, `-o "xml"`},
		{"bad server", []string{"status", "--server", "ftp://x"}, 2, "--server"},
		{"two names", []string{"status", "a", "b", "--server", url}, 2, "accepts at most 1 arg"},
		{"history limit 0", []string{"history", "grpc-helloworld-py", "--limit", "0", "--server", url}, 2, "--limit"},
		{"history without a name", []string{"history", "--server", url}, 2, "accepts 1 arg"},
		{"action without a token", []string{"pause", "grpc-helloworld-py", "--reason", "x", "--server", url, "--token-file", ""}, 2, "--token-file"},
		{"action with a wrong token", []string{"pause", "grpc-helloworld-py", "--reason", "x", "--server", url, "--token-file", wrong}, 1, "403 Forbidden: the bearer token is wrong"},
		{"missing token file", []string{"pause", "grpc-helloworld-py", "--server", url, "--token-file", wrong + "-missing"}, 1, "read the token"},
		{"abort without a reason", []string{"abort", "grpc-helloworld-py", "--server", url, "--token-file", tokenFile}, 2, "--reason is required"},
		{"refused by phase", []string{"resume", "grpc-helloworld-py", "--server", url, "--token-file", tokenFile}, 1, "409 Conflict"},
		{"unknown rollout action", []string{"pause", "nope", "--server", url, "--token-file", tokenFile}, 1, "404"},
		{"watch ends on a 404", []string{"status", "nope", "--watch", "--server", url}, 1, "404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d saying %q", code, errOut, tc.code, tc.want)
			}
			if strings.Contains(out+errOut, cliToken) {
				t.Errorf("the token was printed")
			}
		})
	}
}

func TestActionCommands(t *testing.T) {
	src := newFakeSource()
	url, tokenFile := startAPI(t, src)
	t.Setenv("USER", "oncall")
	t.Setenv(envServer, url)
	t.Setenv(envTokenFile, tokenFile)
	host, _ := os.Hostname()

	code, out, errOut := runCmd("pause", "grpc-helloworld-py", "--reason", "watching the dashboards")
	if code != 0 || out != "grpc-helloworld-py: pause by oncall@"+host+"; now Paused at step 2/3, weights 60/40\n" {
		t.Errorf("pause: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = runCmd("abort", "grpc-helloworld-py", "--reason", "errors in v2", "--actor", "pat")
	if code != 0 || !strings.Contains(out, "now Aborted at step 2/3, weights 100/0") {
		t.Errorf("abort: exit %d, %q %q", code, out, errOut)
	}
	want := []string{"pause grpc-helloworld-py oncall@" + host + " watching the dashboards", "abort grpc-helloworld-py pat errors in v2"}
	if diff := cmp.Diff(want, src.acts); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

func TestHistoryCommand(t *testing.T) {
	url, _ := startAPI(t, newFakeSource())
	code, out, errOut := runCmd("history", "grpc-helloworld-py", "--limit", "3", "--server", url)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(lines) != 5 {
		t.Fatalf("history: exit %d %s:\n%s", code, errOut, out)
	}
	var seqs []string
	for _, l := range lines[1:4] {
		seqs = append(seqs, strings.Fields(l)[0])
	}
	if diff := cmp.Diff([]string{"5", "6", "7"}, seqs); diff != "" {
		t.Errorf("rows, oldest first (-want +got):\n%s\n%s", diff, out)
	}
	if !regexp.MustCompile(`^7\s+\S+ \S+Z\s+verdict\s+1\s+2\s+60/40\s+pass probe\s+4f1c2a9d0e7b\s+-`).MatchString(lines[3]) {
		t.Errorf("row %q", lines[3])
	}
	if lines[4] != "older events: canaryd history grpc-helloworld-py --before 5" {
		t.Errorf("paging hint %q", lines[4])
	}
	code, out, _ = runCmd("history", "grpc-helloworld-py", "--before", "5", "-o", "json", "--server", url)
	var page server.HistoryPage
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Events) != 4 || page.Events[0].Seq != 4 || page.Events[3].Kind != rollout.EventStarted {
		t.Errorf("history --before 5 -o json: exit %d:\n%s", code, out)
	}
}

func TestWatchLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out strings.Builder
	calls := 0
	err := watchLoop(ctx, &out, time.Millisecond, func(_ context.Context, w io.Writer) error {
		calls++
		if calls == 2 {
			return errors.New("connection refused")
		}
		if calls == 3 {
			cancel()
		}
		fmt.Fprintf(w, "draw %d\n", calls)
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("watch: %v after %d calls", err, calls)
	}
	s := out.String()
	if strings.Contains(s, "\x1b[") {
		t.Error("cleared the screen of something that is not a terminal")
	}
	if !strings.Contains(s, "draw 1") || !strings.Contains(s, "error: connection refused (retrying)") || strings.Count(s, "canaryd status at") != 2 {
		t.Errorf("watch output:\n%s", s)
	}
}

func TestBar(t *testing.T) {
	for canary, want := range map[int]string{0: "[░░░░░░░░░░░░░░░░░░░░]", 40: "[████████░░░░░░░░░░░░]", 100: "[████████████████████]", 150: "[████████████████████]"} {
		if got := bar(canary); got != want {
			t.Errorf("bar(%d) = %s, want %s", canary, got, want)
		}
	}
}
