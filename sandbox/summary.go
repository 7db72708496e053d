package sandbox

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// StepReport is one move of the rollout in the summary: a step, a rollback, the end.
type StepReport struct {
	Time    time.Time
	Kind    rollout.EventKind
	Step    int // 1-based; 0 when the event lands on no step
	Weights rollout.Weights
	Commit  string
	Actor   string
	Reason  string
	// Evidence is the last verdict of each gate before the move, one line each.
	Evidence []string
}

// reported are the event kinds the summary lists.
var reported = []rollout.EventKind{
	rollout.EventStarted, rollout.EventStep, rollout.EventRolledBack, rollout.EventSucceeded,
	rollout.EventOverridden, rollout.EventAborted, rollout.EventPaused,
}

// Steps turns canaryd's history (newest first, as the API returns it) into the summary's
// moves, oldest first, each with the gates' last verdicts before it.
func Steps(newestFirst []rollout.Event) []StepReport {
	evs := slices.Clone(newestFirst)
	slices.Reverse(evs)
	var out []StepReport
	last := map[string]*rollout.Verdict{}
	var gates []string
	for _, ev := range evs {
		if ev.Kind == rollout.EventVerdict && ev.Verdict != nil {
			if _, seen := last[ev.Verdict.Gate]; !seen {
				gates = append(gates, ev.Verdict.Gate)
			}
			last[ev.Verdict.Gate] = ev.Verdict
			continue
		}
		if !slices.Contains(reported, ev.Kind) {
			continue
		}
		r := StepReport{
			Time: ev.Time, Kind: ev.Kind, Step: ev.Step + 1, Weights: ev.Weights,
			Commit: ev.Commit, Actor: ev.Actor, Reason: ev.Reason,
		}
		for _, g := range gates {
			if v := last[g]; v != nil {
				r.Evidence = append(r.Evidence, VerdictLine(v))
			}
		}
		clear(last)
		gates = gates[:0]
		out = append(out, r)
	}
	return out
}

// VerdictLine says a verdict in one line: "grpc-success-rate pass: 0.998 >= 0.95 (212 requests)".
func VerdictLine(v *rollout.Verdict) string {
	s := fmt.Sprintf("%s %s", v.Gate, v.Result)
	if v.Reason != "" {
		return s + ": " + v.Reason
	}
	var parts []string
	for _, e := range v.Evidence {
		switch {
		case e.Threshold != "":
			parts = append(parts, fmt.Sprintf("%.4g vs %s", e.Value, e.Threshold))
		case e.Code != "":
			parts = append(parts, e.Code)
		}
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}

// WriteSummary prints the result: the verdict line, each move with its time, weights,
// commit and evidence, the split the traffic saw, and the remote's git log.
func (r Result) WriteSummary(out io.Writer, remote string) {
	word := "ended as it should"
	if !r.OK {
		word = "did NOT end as it should"
	}
	fmt.Fprintf(out, "\nscenario %s %s after %s:\n  %s\n", r.Scenario, word, r.Duration.Round(time.Second), r.Why)
	if len(r.Steps) > 0 {
		fmt.Fprintf(out, "\nsteps (canaryd's history):\n")
	}
	zone := r.Zone
	if zone == nil {
		zone = time.Local
	}
	for _, s := range r.Steps {
		step := "     "
		if s.Step > 0 {
			step = fmt.Sprintf("%d/%d", s.Step, 3)
		}
		commit := "-"
		if s.Commit != "" {
			commit = s.Commit[:min(12, len(s.Commit))]
		}
		fmt.Fprintf(out, "  %s  %-11s %s  v1=%-3d v2=%-3d  commit %s\n",
			s.Time.In(zone).Format("15:04:05"), s.Kind, step, s.Weights.Stable, s.Weights.Canary, commit)
		if s.Reason != "" || s.Actor != "" {
			fmt.Fprintf(out, "      %s\n", strings.TrimSpace(strings.Join([]string{s.Actor, s.Reason}, " ")))
		}
		for _, e := range s.Evidence {
			fmt.Fprintf(out, "      evidence: %s\n", e)
		}
	}
	fmt.Fprintf(out, "\ntraffic through the gateway: %d calls, %s\n", r.Split.Calls, codesLine(r.Split.ByCode))
	fmt.Fprintf(out, "\ngit -C %s log (newest first):\n", remote)
	for _, c := range r.Log {
		fmt.Fprintf(out, "  %s  %s  %-34s %s\n", c.Short(), c.Time.In(zone).Format("15:04:05"), c.Author, c.Subject)
		for _, k := range []string{"Rollout-Step", "Rollout-Weights", "Rollout-Reason"} {
			if v := c.Trailers[k]; v != "" {
				fmt.Fprintf(out, "      %s: %s\n", k, v)
			}
		}
	}
	manifest := r.Manifest
	if manifest == "" {
		manifest = Manifest
	}
	fmt.Fprintf(out, "Git now holds v1=%d v2=%d in %s.\n", r.Weights.Stable, r.Weights.Canary, manifest)
}

func codesLine(byCode map[string]uint64) string {
	keys := make([]string, 0, len(byCode))
	for k := range byCode {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", byCode[k], k))
	}
	if len(parts) == 0 {
		return "none answered"
	}
	return strings.Join(parts, ", ")
}
