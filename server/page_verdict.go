package server

import (
	"strings"

	"github.com/canarydio/canaryd/rollout"
)

// decisive is the verdict that rolled ro's run back: the newest failing verdict of the
// run in evs (newest first) before its rollback event. It is nil unless ro is RolledBack.
func decisive(ro Rollout, evs []rollout.Event) *rollout.Verdict {
	if ro.Phase != rollout.RolledBack {
		return nil
	}
	back := false
	for _, ev := range evs {
		if ev.Run != ro.Run {
			continue
		}
		if ev.Kind == rollout.EventRolledBack {
			back = true
			continue
		}
		if back && ev.Verdict != nil && ev.Verdict.Result == rollout.Fail {
			return ev.Verdict
		}
	}
	return nil
}

// resultMark is a verdict's shape, so that pass and fail differ by more than colour.
func resultMark(r rollout.Result) string {
	switch r {
	case rollout.Pass:
		return "✓"
	case rollout.Fail:
		return "✗"
	case rollout.Inconclusive:
		return "?"
	}
	return "!"
}

// commitLink fills tmpl's {sha} with commit; "" when either is empty or commit is not a
// hash (nothing else reaches a link).
func commitLink(tmpl, commit string) string {
	if tmpl == "" || commit == "" || strings.Trim(commit, "0123456789abcdef") != "" {
		return ""
	}
	return strings.ReplaceAll(tmpl, "{sha}", commit)
}

// blocked says why ro cannot run, from its state and its history (evs, newest first): the
// Stuck condition of a step past its progress deadline, or the failure of its newest move
// when nothing has moved since (the target does not exist, the manifest is not found, the
// cluster refuses). It is "" for a rollout that is running or done.
func blocked(ro Rollout, evs []rollout.Event) string {
	if ro.Stuck != nil {
		return ro.Stuck.Reason
	}
	if ro.Phase.Terminal() || ro.Phase == rollout.Invalid {
		return ""
	}
	for _, ev := range evs {
		switch ev.Kind {
		case rollout.EventMoveFailed:
			if ev.Message != "" {
				return ev.Message
			}
			return "the last move failed"
		case rollout.EventVerdict, rollout.EventIntent, rollout.EventNotified:
			continue
		}
		return ""
	}
	return ""
}
