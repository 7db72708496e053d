package server

import (
	"context"
	"crypto/sha256"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPeopleTokens: a person's token authorizes an action and names its actor, whatever
// the client claims; the shared token still works with the client's actor; the list says
// actions are enabled with people's tokens alone.
func TestPeopleTokens(t *testing.T) {
	src := sampleSource()
	people := map[[32]byte]string{sha256.Sum256([]byte("alice-token")): "alice@example.com"}
	srv := httptest.NewServer(New(Options{Source: src, People: people}))
	t.Cleanup(srv.Close)
	status, body := call(t, "POST", srv.URL+"/api/v1/rollouts/grpc-helloworld-py/pause", "alice-token", `{"reason": "x", "actor": "mallory"}`)
	res := decodeJSON[ActionResult](t, body)
	if status != 200 || res.Actor != "alice@example.com" {
		t.Fatalf("pause with alice's token: %d %s; want 200 by alice", status, body)
	}
	if ro, _ := src.Rollout(context.Background(), "grpc-helloworld-py"); !strings.Contains(ro.Message, "by alice@example.com") {
		t.Errorf("the action was recorded as %q", ro.Message)
	}
	if status, _ := call(t, "POST", srv.URL+"/api/v1/rollouts/grpc-helloworld-py/resume", "bob-token", `{"reason": "x"}`); status != 403 {
		t.Errorf("an unknown token: %d, want 403", status)
	}
	_, body = call(t, "GET", srv.URL+"/api/v1/rollouts", "", "")
	if l := decodeJSON[RolloutList](t, body); l.Actions != ActionsEnabled {
		t.Errorf("actions %q with people's tokens, want enabled", l.Actions)
	}

	both := httptest.NewServer(New(Options{Source: src, Token: []byte("shared"), People: people}))
	t.Cleanup(both.Close)
	status, body = call(t, "POST", both.URL+"/api/v1/rollouts/grpc-helloworld-py/resume", "shared", `{"reason": "x", "actor": "carol"}`)
	if res := decodeJSON[ActionResult](t, body); status != 200 || res.Actor != "carol" {
		t.Errorf("resume with the shared token: %d %s; want 200 by carol", status, body)
	}
}
