package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canarydio/canaryd/notify"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/store"
)

// TestRollbackNotifies: saving a rollback through the store the controller uses sends one
// webhook and one Slack message to real local receivers, with the failing verdict's
// evidence, while a third receiver that never answers holds nothing up.
func TestRollbackNotifies(t *testing.T) {
	got := make(chan string, 8)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.URL.Path + " " + string(b)
	}))
	defer recv.Close()
	hang := make(chan struct{})
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer stuck.Close()
	defer close(hang)
	urlFile := filepath.Join(t.TempDir(), "slack-url")
	os.WriteFile(urlFile, []byte(recv.URL+"/slack\n"), 0o600)
	cfg := NotifyConfig{Receivers: []NotifyReceiver{
		{Name: "stuck", Kind: notify.KindTeams, URL: stuck.URL},
		{Name: "hook", Kind: notify.KindWebhook, URL: recv.URL + "/hook", Events: []string{"rolled-back"}},
		{Name: "slack", Kind: notify.KindSlack, URLFile: urlFile, Events: []string{"rolled-back"}},
	}}
	n, err := newNotifier(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.run(ctx)
	db, err := store.Open(filepath.Join(t.TempDir(), "canaryd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := &daemon{db: db, notify: n}
	st := observedStore{DB: db, d: d}

	now := time.Now().UTC()
	fail := &rollout.Verdict{Gate: "grpc-success-rate", Result: rollout.Fail, Time: now, Reason: "canary: 0.5 is below 0.99",
		Evidence: []rollout.Evidence{{Query: "sum(x)", Value: 0.5, Threshold: ">= 0.99", Samples: 80}}}
	s := rollout.State{Rollout: "hello", Phase: rollout.Progressing, Run: 1, Step: 1, Weights: rollout.CanaryAt(40), LastVerdict: fail}
	if err := st.Save(s, rollout.Event{Time: now, Rollout: "hello", Kind: rollout.EventVerdict, Run: 1, Step: 1, Weights: s.Weights, Verdict: fail}); err != nil {
		t.Fatal(err)
	}
	s.Phase, s.Weights = rollout.RolledBack, rollout.CanaryAt(0)
	back := rollout.Event{Time: now, Rollout: "hello", Kind: rollout.EventRolledBack, Run: 1, Step: 1, Weights: s.Weights,
		Phase: rollout.RolledBack, Commit: "abc123", Reason: "grpc-success-rate failed 1 check"}
	if err := st.Save(s, back); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for len(seen) < 2 {
		select {
		case m := <-got:
			path, body, _ := strings.Cut(m, " ")
			seen[path] = body
		case <-time.After(10 * time.Second):
			t.Fatalf("only %v arrived", seen)
		}
	}
	var hook notify.Message
	if err := json.Unmarshal([]byte(seen["/hook"]), &hook); err != nil || hook.Event != rollout.EventRolledBack ||
		hook.Verdict == nil || hook.Verdict.Evidence[0].Value != 0.5 || hook.Commit != "abc123" {
		t.Errorf("webhook: %v %s", err, seen["/hook"])
	}
	if !strings.Contains(seen["/slack"], "hello rolled back") || !strings.Contains(seen["/slack"], `value 0.5 (want \u003e= 0.99)`) {
		t.Errorf("slack: %s", seen["/slack"])
	}
	select {
	case m := <-got:
		t.Errorf("a receiver got a second message: %s", m)
	default:
	}
}

// TestNotifyConfigProblems: a bad notify: section is refused with where and why.
func TestNotifyConfigProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "canaryd.yaml")
	body := `git: {url: file:///tmp/x, rollouts: "rollouts/*.yaml"}
notify:
  receivers:
    - {name: a, kind: pager, url: http://x}
    - {name: b, kind: slack}
    - {name: c, kind: webhook, url: http://x, events: [rollback]}
`
	os.WriteFile(path, []byte(body), 0o600)
	_, err := loadConfig(path)
	for _, want := range []string{"notify.receivers[0].kind: must be one of webhook, slack, teams", "notify.receivers[1].url: set url or urlFile",
		`notify.receivers[2].events[0]: unknown event "rollback"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig = %v, want %q", err, want)
		}
	}
}
