package serve_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/notify"
	"github.com/canarydio/canaryd/rollout"
)

// TestServeRollbackNotifies: canary failing, canaryd serve with three receivers on
// loopback: a generic webhook and a Slack webhook each get one rollback message carrying
// the failing verdict's evidence, and a Teams receiver that never answers delays neither
// the rollback nor them.
func TestServeRollbackNotifies(t *testing.T) {
	w := newWorld(t)
	got := make(chan string, 64)
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.URL.Path + " " + string(b)
	}))
	t.Cleanup(recv.Close)
	hang := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); stuck.Close() })
	f, err := os.OpenFile(w.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("notify:\n  receivers:\n" +
		"    - {name: stuck, kind: teams, url: " + stuck.URL + ", timeout: 30s}\n" +
		"    - {name: hook, kind: webhook, url: " + recv.URL + "/hook, events: [rolled-back]}\n" +
		"    - {name: slack, kind: slack, url: " + recv.URL + "/slack, events: [rolled-back]}\n")
	f.Close()

	w.v2.SetErrors(0.3, codes.Unavailable)
	w.serve()
	r := w.waitPhase(90*time.Second, rollout.RolledBack, rollout.Succeeded)
	if r.Phase != rollout.RolledBack {
		t.Fatalf("a canary failing 30%% of calls ended %s", r.Phase)
	}
	seen := map[string]string{}
	deadline := time.After(30 * time.Second)
	for len(seen) < 2 {
		select {
		case m := <-got:
			path, body, _ := strings.Cut(m, " ")
			if _, dup := seen[path]; dup {
				t.Errorf("a second message to %s: %s", path, body)
			}
			seen[path] = body
		case <-deadline:
			t.Fatalf("after the rollback only %v arrived\n%s", seen, w.logText())
		}
	}
	var hook notify.Message
	if err := json.Unmarshal([]byte(seen["/hook"]), &hook); err != nil || hook.Event != rollout.EventRolledBack ||
		hook.Weights != rollout.CanaryAt(0) {
		t.Errorf("webhook body: %v %s", err, seen["/hook"])
	}
	if hook.Verdict == nil || hook.Verdict.Result != rollout.Fail || len(hook.Verdict.Evidence) == 0 {
		t.Errorf("the webhook lacks the failing verdict's evidence: %s", seen["/hook"])
	}
	if !strings.Contains(seen["/slack"], rolloutName+" rolled back") || !strings.Contains(seen["/slack"], "Evidence") {
		t.Errorf("slack body: %s", seen["/slack"])
	}
}
