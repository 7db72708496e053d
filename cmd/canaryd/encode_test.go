package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// TestEncodeOrderAndDurations: -o yaml keeps the API's field order, -o json and -o yaml
// print durations as strings, and what they print decodes to the same values.
func TestEncodeOrderAndDurations(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r := server.Rollout{Name: "hello", Phase: rollout.Progressing, Step: 2, Steps: 3, Weights: rollout.CanaryAt(40), Commit: "1234",
		LastVerdict: &rollout.Verdict{Gate: "probe", Result: rollout.Pass, Time: at,
			Evidence: []rollout.Evidence{{Code: "OK", Latency: 1500 * time.Microsecond, Reply: "true"}}}}
	var js, ys strings.Builder
	if err := encode(&js, "json", r); err != nil {
		t.Fatal(err)
	}
	if err := encode(&ys, "yaml", r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"latency": "1.5ms"`) || !strings.Contains(ys.String(), "latency: 1.5ms") {
		t.Errorf("latency is not a duration string:\n%s\n%s", js.String(), ys.String())
	}
	y := ys.String()
	if i, j := strings.Index(y, "name:"), strings.Index(y, "phase:"); i < 0 || j < i || !strings.HasPrefix(y, "name: hello\n") {
		t.Errorf("-o yaml does not keep the API's order (name, phase, ...):\n%s", y)
	}
	var fromJSON, fromYAML map[string]any
	if err := json.Unmarshal([]byte(js.String()), &fromJSON); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, js.String())
	}
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if fromYAML["commit"] != "1234" || fromJSON["commit"] != "1234" {
		t.Errorf("a numeric-looking string changed type: json %#v, yaml %#v", fromJSON["commit"], fromYAML["commit"])
	}
	ev := fromYAML["lastVerdict"].(map[string]any)["evidence"].([]any)[0].(map[string]any)
	if ev["reply"] != "true" {
		t.Errorf("the string \"true\" came back as %#v", ev["reply"])
	}
	if fromJSON["step"] != 2.0 || fromJSON["steps"] != 3.0 {
		t.Errorf("step %v of %v", fromJSON["step"], fromJSON["steps"])
	}
}

// TestHistoryStepsFromOne: history -o json counts steps as status does.
func TestHistoryStepsFromOne(t *testing.T) {
	url, _ := startAPI(t, newFakeSource())
	code, out, errOut := runCmd("history", "grpc-helloworld-py", "-o", "json", "--server", url)
	var page server.HistoryPage
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil {
		t.Fatalf("exit %d %s\n%s", code, errOut, out)
	}
	steps := map[rollout.EventKind]int{}
	for _, ev := range page.Events {
		steps[ev.Kind] = ev.Step
	}
	// The fake's events: started at the store's step 0 and verdicts at its step 1, which
	// status calls steps 1 and 2.
	if steps[rollout.EventStarted] != 1 || steps[rollout.EventVerdict] != 2 {
		t.Errorf("steps %v, want started at 1 and verdicts at 2", steps)
	}
}

// TestStatusWide: -o wide adds the run, the subsets and the commit.
func TestStatusWide(t *testing.T) {
	url, _ := startAPI(t, newFakeSource())
	code, out, errOut := runCmd("status", "-o", "wide", "--server", url)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "COMMIT") {
		t.Fatalf("exit %d %s\n%s", code, errOut, out)
	}
	for _, w := range []string{"grpc-helloworld-py", "Progressing", " 1 ", "2/3", "v1", "v2", "60/40", "4f1c2a9d0e7b"} {
		if !strings.Contains(lines[2], w) {
			t.Errorf("wide row lacks %q: %s", w, lines[2])
		}
	}
}

// TestStatusSaysActionsDisabled: the list says when the daemon takes no actions.
func TestStatusSaysActionsDisabled(t *testing.T) {
	srv := httptest.NewServer(server.New(server.Options{Source: newFakeSource()}))
	t.Cleanup(srv.Close)
	code, out, _ := runCmd("status", "--server", srv.URL)
	if code != 0 || !strings.Contains(out, "operator actions are disabled") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	url, _ := startAPI(t, newFakeSource())
	if _, out, _ := runCmd("status", "--server", url); strings.Contains(out, "disabled") {
		t.Errorf("with a token the list says actions are disabled:\n%s", out)
	}
}
