package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// Message is one notification: what happened to which rollout, with the evidence. It is
// the body of a generic webhook, as JSON.
type Message struct {
	Rollout string            `json:"rollout"`
	Event   rollout.EventKind `json:"event"`
	Phase   rollout.Phase     `json:"phase"`
	Run     int               `json:"run"`
	// Step counts from 1, as the commit trailers do (0: before the first step).
	Step    int              `json:"step"`
	Weights rollout.Weights  `json:"weights"`
	Verdict *rollout.Verdict `json:"verdict,omitempty"`
	Commit  string           `json:"commit,omitempty"`
	Actor   string           `json:"actor,omitempty"`
	Reason  string           `json:"reason,omitempty"`
	Message string           `json:"message,omitempty"`
	Time    time.Time        `json:"time"`
}

// FromEvent is the message of a history event. verdict, when the event has none, is the
// rollout's last verdict, so that a rollback carries the failing check that caused it.
func FromEvent(ev rollout.Event, verdict *rollout.Verdict) Message {
	m := Message{Rollout: ev.Rollout, Event: ev.Kind, Phase: ev.Phase, Run: ev.Run, Step: max(ev.Step+1, 0),
		Weights: ev.Weights, Verdict: ev.Verdict, Commit: ev.Commit, Actor: ev.Actor, Reason: ev.Reason,
		Message: ev.Message, Time: ev.Time}
	if m.Verdict == nil {
		m.Verdict = verdict
	}
	return m
}

// Summary is the message in one line, for chat.
func (m Message) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", icon(m.Event), m.Rollout, title(m.Event))
	if m.Run > 0 {
		fmt.Fprintf(&b, " (run %d", m.Run)
		if m.Step > 0 {
			fmt.Fprintf(&b, ", step %d", m.Step)
		}
		b.WriteString(")")
	}
	if m.Event != rollout.EventInvalid {
		fmt.Fprintf(&b, ": canary at %d%%", m.Weights.Canary)
	}
	if why := m.why(); why != "" {
		b.WriteString(" - " + why)
	}
	return b.String()
}

// why is the reason, the actor or the verdict behind the message.
func (m Message) why() string {
	var parts []string
	if m.Reason != "" {
		parts = append(parts, m.Reason)
	}
	if m.Actor != "" {
		parts = append(parts, "by "+m.Actor)
	}
	if v := m.Verdict; v != nil && (m.Event == rollout.EventRolledBack || m.Reason == "") && v.Result != rollout.Pass {
		parts = append(parts, fmt.Sprintf("%s %s: %s", v.Result, v.Gate, v.Reason))
	}
	if len(parts) == 0 && m.Message != "" {
		parts = append(parts, m.Message)
	}
	return strings.Join(parts, "; ")
}

// evidenceLines formats the verdict's evidence, one measurement a line.
func (m Message) evidenceLines() []string {
	if m.Verdict == nil {
		return nil
	}
	var out []string
	for _, e := range m.Verdict.Evidence {
		s := "value " + strconv.FormatFloat(e.Value, 'g', 6, 64)
		if e.Code != "" {
			s = "code " + e.Code
			if e.Latency > 0 {
				s += " in " + e.Latency.Round(time.Microsecond).String()
			}
		}
		if e.Threshold != "" {
			s += " (want " + e.Threshold + ")"
		}
		if e.Query != "" {
			s += ": " + e.Query
		}
		if e.Reason != "" {
			s += " - " + e.Reason
		}
		out = append(out, s)
	}
	return out
}

func title(k rollout.EventKind) string {
	switch k {
	case rollout.EventStep:
		return "took a step"
	case rollout.EventRolledBack:
		return "rolled back"
	case rollout.EventAborted:
		return "was aborted"
	case rollout.EventOverridden:
		return "was overridden in Git"
	case rollout.EventPaused:
		return "was paused"
	case rollout.EventSucceeded:
		return "succeeded"
	case rollout.EventInvalid:
		return "has an invalid spec"
	}
	return string(k)
}

func icon(k rollout.EventKind) string {
	switch k {
	case rollout.EventRolledBack, rollout.EventAborted, rollout.EventInvalid:
		return "[FAIL]"
	case rollout.EventSucceeded:
		return "[OK]"
	}
	return "[INFO]"
}

func color(k rollout.EventKind) string {
	switch k {
	case rollout.EventRolledBack, rollout.EventAborted, rollout.EventInvalid:
		return "#b00020"
	case rollout.EventSucceeded:
		return "#1b7f3b"
	}
	return "#455a64"
}

// render is the request body for a receiver kind.
func render(kind string, m Message) ([]byte, error) {
	switch kind {
	case KindSlack:
		return json.Marshal(slackBody(m))
	case KindTeams:
		return json.Marshal(teamsBody(m))
	}
	return json.Marshal(m)
}

// slackBody is a Slack incoming webhook message: the summary as text (what notifications
// show), and an attachment with the weights, the commit and the evidence.
func slackBody(m Message) map[string]any {
	fields := []map[string]any{
		{"title": "Weights", "value": fmt.Sprintf("stable %d%% / canary %d%%", m.Weights.Stable, m.Weights.Canary), "short": true},
		{"title": "Phase", "value": string(m.Phase), "short": true},
	}
	if m.Commit != "" {
		fields = append(fields, map[string]any{"title": "Commit", "value": m.Commit, "short": false})
	}
	if ev := m.evidenceLines(); len(ev) > 0 {
		fields = append(fields, map[string]any{"title": "Evidence", "value": strings.Join(ev, "\n"), "short": false})
	}
	return map[string]any{
		"text":        m.Summary(),
		"attachments": []map[string]any{{"color": color(m.Event), "fields": fields, "ts": m.Time.Unix()}},
	}
}

// teamsBody is a Microsoft Teams message with an Adaptive Card, as Teams' workflow
// webhooks ("post to a channel when a webhook request is received") take it.
func teamsBody(m Message) map[string]any {
	facts := []map[string]string{
		{"title": "Weights", "value": fmt.Sprintf("stable %d%% / canary %d%%", m.Weights.Stable, m.Weights.Canary)},
		{"title": "Phase", "value": string(m.Phase)},
	}
	if m.Commit != "" {
		facts = append(facts, map[string]string{"title": "Commit", "value": m.Commit})
	}
	body := []any{
		map[string]any{"type": "TextBlock", "text": m.Summary(), "wrap": true, "weight": "Bolder"},
		map[string]any{"type": "FactSet", "facts": facts},
	}
	for _, line := range m.evidenceLines() {
		body = append(body, map[string]any{"type": "TextBlock", "text": line, "wrap": true, "fontType": "Monospace", "size": "Small"})
	}
	card := map[string]any{"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"version": "1.4", "body": body}
	return map[string]any{"type": "message", "summary": m.Summary(),
		"attachments": []map[string]any{{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}}}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
