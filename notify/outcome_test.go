package notify

import (
	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// TestDroppedIsReported: with nothing delivering, a full queue drops the next message and
// says so through OnResult, from Notify, without blocking.
func TestDroppedIsReported(t *testing.T) {
	var got []string
	n, err := New(Options{Queue: 1, OnResult: func(receiver string, m Message, result string, err error) {
		got = append(got, receiver+" "+string(m.Event)+" "+result)
	}, Receivers: []Receiver{{Name: "hook", Kind: KindWebhook, URL: "http://127.0.0.1:1/never", Events: []rollout.EventKind{rollout.EventStep}}}})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(Message{Rollout: "a", Event: rollout.EventStep})
	n.Notify(Message{Rollout: "a", Event: rollout.EventStep})
	if len(got) != 1 || got[0] != "hook step dropped" {
		t.Errorf("outcomes %q, want one drop", got)
	}
}
