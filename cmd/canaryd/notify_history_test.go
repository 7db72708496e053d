package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/canarydio/canaryd/notify"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/store"
)

// TestNotificationOutcomesInHistory: each delivery of a rollback's notification, to a
// real receiver that takes it and to one that refuses it, is an event in the rollout's
// history that names the receiver and the outcome, and never the receiver's URL.
func TestNotificationOutcomesInHistory(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such channel", http.StatusNotFound)
	}))
	defer refuse.Close()
	secret := refuse.URL + "/services/T000/B000/s3cret"
	cfg := NotifyConfig{Receivers: []NotifyReceiver{
		{Name: "ops-hook", Kind: notify.KindWebhook, URL: ok.URL + "/hook", Events: []string{"rolled-back"}},
		{Name: "ops-slack", Kind: notify.KindSlack, URL: secret, Events: []string{"rolled-back"}},
	}}
	n, err := newNotifier(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "canaryd.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	appended := make(chan error, 4)
	n.historyTo(func(name string, evs ...rollout.Event) error {
		err := db.Append(name, evs...)
		appended <- err
		return err
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.run(ctx)

	st := observedStore{DB: db, d: &daemon{db: db, notify: n}}
	s := rollout.State{Rollout: "hello", Phase: rollout.RolledBack, Run: 2, Step: -1, Weights: rollout.CanaryAt(0)}
	back := rollout.Event{Time: time.Now(), Rollout: "hello", Kind: rollout.EventRolledBack, Run: 2, Step: -1,
		Weights: s.Weights, Phase: rollout.RolledBack, Commit: "abc123", Reason: "probe failed 2 checks in a row"}
	if err := st.Save(s, back); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-appended:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a delivery's outcome was not recorded within 20s")
		}
	}
	evs, err := db.History("hello", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	notified := slices.DeleteFunc(evs, func(ev rollout.Event) bool { return ev.Kind != rollout.EventNotified })
	if len(notified) != 2 {
		t.Fatalf("%d notified events in history, want one per receiver: %+v", len(notified), notified)
	}
	outcome := map[string]rollout.Event{}
	for _, ev := range notified {
		outcome[ev.Actor] = ev
	}
	if ev := outcome["ops-hook"]; ev.Reason != notify.ResultSent || ev.Run != 2 || ev.Commit != "abc123" {
		t.Errorf("webhook delivery: %+v, want sent, run 2, commit abc123", ev)
	}
	ev := outcome["ops-slack"]
	if ev.Reason != notify.ResultFailed || !strings.Contains(ev.Message, "404") {
		t.Errorf("refused Slack delivery: %+v, want failed with the status", ev)
	}
	for _, ev := range notified {
		if strings.Contains(ev.Message, "s3cret") || strings.Contains(ev.Message, refuse.URL) {
			t.Errorf("a notified event holds the receiver's URL: %q", ev.Message)
		}
	}
}
