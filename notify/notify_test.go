package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/canarydio/canaryd/rollout"
)

// receiver is a real HTTP server on loopback that records what it is sent.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	got    chan []byte
	status func(n int) int // the status of the n-th request (from 1); nil: 200
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{got: make(chan []byte, 16), status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		n := len(r.bodies)
		r.mu.Unlock()
		code := 200
		if r.status != nil {
			code = r.status(n)
		}
		w.WriteHeader(code)
		if code == 200 {
			r.got <- body
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// hanging is a receiver that accepts requests and never answers until the test ends.
func hanging(t *testing.T) *httptest.Server {
	done := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-done:
		case <-req.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); s.Close() })
	return s
}

// start runs a Notifier for opts until the test ends, its metrics on a pedantic registry.
func start(t *testing.T, opts Options) (*Notifier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	opts.Registerer = reg
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return n, reg
}

func receive(t *testing.T, r *receiver) []byte {
	t.Helper()
	select {
	case b := <-r.got:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got nothing")
		return nil
	}
}

// rollback is the message of a rollback caused by a failing success-rate check.
func rollback() Message {
	v := &rollout.Verdict{Gate: "grpc-success-rate", Result: rollout.Fail, Reason: "canary: 0.71 is below 0.99",
		Evidence: []rollout.Evidence{{Query: `sum(rate(istio_requests_total{destination_version="v2"}[1m]))`, Value: 0.71, Threshold: ">= 0.99", Samples: 120}}}
	ev := rollout.Event{Rollout: "grpc-helloworld-py", Kind: rollout.EventRolledBack, Phase: rollout.RolledBack, Run: 3, Step: 1,
		Weights: rollout.CanaryAt(0), Commit: "4f1c2a9d0e7b", Reason: "grpc-success-rate failed 2 checks in a row", Time: time.Now().UTC()}
	return FromEvent(ev, v)
}

// TestDeliverEachKind: one rollback reaches a webhook, a Slack and a Teams receiver, each
// in its own format, with the failing verdict's evidence.
func TestDeliverEachKind(t *testing.T) {
	hook, slack, teams := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	n, _ := start(t, Options{Receivers: []Receiver{
		{Name: "hook", Kind: KindWebhook, URL: hook.URL},
		{Name: "slack", Kind: KindSlack, URL: slack.URL},
		{Name: "teams", Kind: KindTeams, URL: teams.URL},
	}})
	n.Notify(rollback())

	var m Message
	if err := json.Unmarshal(receive(t, hook), &m); err != nil {
		t.Fatal(err)
	}
	if m.Rollout != "grpc-helloworld-py" || m.Event != rollout.EventRolledBack || m.Step != 2 || m.Weights.Canary != 0 ||
		m.Commit != "4f1c2a9d0e7b" || m.Verdict == nil || m.Verdict.Evidence[0].Value != 0.71 {
		t.Errorf("webhook body %+v", m)
	}
	var s struct {
		Text        string `json:"text"`
		Attachments []struct {
			Fields []struct{ Title, Value string } `json:"fields"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(receive(t, slack), &s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Text, "grpc-helloworld-py rolled back (run 3, step 2): canary at 0%") || !strings.Contains(s.Text, "fail grpc-success-rate: canary: 0.71 is below 0.99") {
		t.Errorf("slack text %q", s.Text)
	}
	if len(s.Attachments) != 1 || !strings.Contains(s.Attachments[0].Fields[len(s.Attachments[0].Fields)-1].Value, "value 0.71 (want >= 0.99)") {
		t.Errorf("slack attachment lacks the evidence: %+v", s.Attachments)
	}
	var tm struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string         `json:"contentType"`
			Content     map[string]any `json:"content"`
		} `json:"attachments"`
	}
	body := receive(t, teams)
	if err := json.Unmarshal(body, &tm); err != nil {
		t.Fatal(err)
	}
	if tm.Type != "message" || len(tm.Attachments) != 1 || tm.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
		!strings.Contains(string(body), "value 0.71") {
		t.Errorf("teams body %s", body)
	}
	for _, r := range []string{"hook", "slack", "teams"} {
		eventually(t, r+" sent", func() bool { return count(n, r, "sent") == 1 })
	}
}

// TestHangingReceiverDelaysNothing: Notify returns at once although a receiver hangs;
// another receiver gets its message meanwhile; the hanging one times out, is retried and
// counts as failed.
func TestHangingReceiverDelaysNothing(t *testing.T) {
	good := newReceiver(t, nil)
	stuck := hanging(t)
	n, _ := start(t, Options{Attempts: 2, Backoff: time.Millisecond, Queue: 2, Receivers: []Receiver{
		{Name: "stuck", Kind: KindSlack, URL: stuck.URL, Timeout: 200 * time.Millisecond},
		{Name: "good", Kind: KindWebhook, URL: good.URL},
	}})
	for range 10 { // more than the stuck receiver's queue holds: the rest is dropped, not waited for
		n.Notify(rollback())
	}
	receive(t, good)
	eventually(t, "stuck failed", func() bool { return count(n, "stuck", "failed") >= 1 })
	if d := count(n, "stuck", "dropped"); d < 1 {
		t.Errorf("dropped %v messages for the stuck receiver, want some (its queue holds 2)", d)
	}
}

// TestRetries: a 503 is retried, a 400 is not.
func TestRetries(t *testing.T) {
	flaky := newReceiver(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return 200
	})
	refusing := newReceiver(t, func(int) int { return http.StatusBadRequest })
	n, _ := start(t, Options{Attempts: 3, Backoff: time.Millisecond, Receivers: []Receiver{
		{Name: "flaky", Kind: KindWebhook, URL: flaky.URL},
		{Name: "refusing", Kind: KindWebhook, URL: refusing.URL},
	}})
	n.Notify(rollback())
	receive(t, flaky)
	eventually(t, "refusing failed", func() bool { return count(n, "refusing", "failed") == 1 })
	refusing.mu.Lock()
	tries := len(refusing.bodies)
	refusing.mu.Unlock()
	if tries != 1 {
		t.Errorf("a 400 was tried %d times, want once", tries)
	}
}

// TestFilters: a receiver gets only its events and rollouts; Invalid is sent once per
// distinct set of problems.
func TestFilters(t *testing.T) {
	r := newReceiver(t, nil)
	n, _ := start(t, Options{Receivers: []Receiver{{Name: "r", Kind: KindWebhook, URL: r.URL,
		Events: []rollout.EventKind{rollout.EventInvalid, rollout.EventSucceeded}, Rollouts: []string{"a"}}}})
	n.Notify(Message{Rollout: "a", Event: rollout.EventStep})
	n.Notify(Message{Rollout: "b", Event: rollout.EventSucceeded})
	n.Invalid("a", "c0ffee", "f.yaml:1:1: spec.steps: is required")
	n.Invalid("a", "c0ffee", "f.yaml:1:1: spec.steps: is required")
	n.Notify(Message{Rollout: "a", Event: rollout.EventSucceeded})
	var first, second Message
	json.Unmarshal(receive(t, r), &first)
	json.Unmarshal(receive(t, r), &second)
	if first.Event != rollout.EventInvalid || second.Event != rollout.EventSucceeded || second.Rollout != "a" {
		t.Errorf("got %s then %s of %s, want invalid then succeeded of a", first.Event, second.Event, second.Rollout)
	}
}

func TestNewRefusesBadReceivers(t *testing.T) {
	for _, r := range []Receiver{{Kind: KindSlack, URL: "http://x"}, {Name: "x", Kind: "pager", URL: "http://x"}, {Name: "x", Kind: KindTeams}} {
		if _, err := New(Options{Receivers: []Receiver{r}}); err == nil {
			t.Errorf("New accepted %+v", r)
		}
	}
}

// count is the value of canaryd_notifications_total for receiver and result.
func count(n *Notifier, receiver, result string) float64 {
	return testutil.ToFloat64(n.results.WithLabelValues(receiver, result))
}

// eventually polls cond every 10ms for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("not within 10s: %s", what)
		case <-tick.C:
		}
	}
}
