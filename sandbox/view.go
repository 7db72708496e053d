package sandbox

import (
	"fmt"
	"strings"
	"time"

	"github.com/canarydio/canaryd/sandbox/traffic"
)

// barWidth is the width of the weights bar, in cells.
const barWidth = 40

// Bar draws the weights as a bar: v1's share (100-canary) in full blocks, v2's in light shade.
func Bar(canary int) string {
	n := (canary*barWidth + 50) / 100
	return strings.Repeat("█", barWidth-n) + strings.Repeat("░", n)
}

// split returns v1's and v2's shares of the answered calls in c, in percent, and how many
// were answered.
func split(c traffic.Counts, v1, v2 string) (p1, p2 float64, n uint64) {
	a, b := c.ByInstance[v1], c.ByInstance[v2]
	n = a + b
	if n == 0 {
		return 0, 0, 0
	}
	return 100 * float64(a) / float64(n), 100 * float64(b) / float64(n), n
}

// Render returns the live view of an observation, one string per line.
func Render(o Observation, statusURL, gatewayAddr string) []string {
	lines := []string{fmt.Sprintf("canaryd demo · scenario %s · status page %s", o.Scenario, statusURL)}
	if ro := o.Rollout; ro != nil {
		lines = append(lines, fmt.Sprintf("rollout %s: %s, step %d/%d, run %d", ro.Name, ro.Phase, ro.Step, ro.Steps, ro.Run))
		lines = append(lines, fmt.Sprintf("canaryd  v1 %s v2  %3d/%-3d", Bar(ro.Weights.Canary), ro.Weights.Stable, ro.Weights.Canary))
	} else {
		lines = append(lines, fmt.Sprintf("rollout: canaryd's API does not answer (%v)", o.APIErr))
	}
	lines = append(lines, fmt.Sprintf("gateway  v1 %s v2  %3d/%-3d  by Git %.12s", Bar(o.Gateway.Canary), o.Gateway.Stable, o.Gateway.Canary, o.Gateway.Commit))
	p1, p2, n := split(o.Traffic.Recent, o.V1, o.V2)
	failed := o.Traffic.Recent.Calls - o.Traffic.Recent.ByCode["OK"]
	lines = append(lines, fmt.Sprintf("observed v1 %5.1f%% · v2 %5.1f%% of %d replies in the last %s · %d failed", p1, p2, n, ObservedWindow, failed))
	if ro := o.Rollout; ro != nil {
		if ro.LastVerdict != nil {
			lines = append(lines, "last verdict: "+VerdictLine(ro.LastVerdict))
		}
		if !ro.NextTick.IsZero() && !ro.Phase.Terminal() {
			lines = append(lines, fmt.Sprintf("next tick in %s", time.Until(ro.NextTick).Round(time.Second)))
		}
		if ro.Message != "" {
			lines = append(lines, "canaryd: "+ro.Message)
		}
	}
	lines = append(lines, fmt.Sprintf("git head %s  %s — %s", o.Head.Short(), o.Head.Author, o.Head.Subject))
	for _, n := range o.Notes {
		lines = append(lines, "demo: "+n)
	}
	lines = append(lines, fmt.Sprintf(`try: grpcurl -d '{"name":"Jack"}' -plaintext %s helloworld.Greeter/SayHello`, gatewayAddr))
	return lines
}

// Line says an observation in one line, for logs and pipes; the notes are left to the
// caller.
func Line(o Observation) string {
	var b strings.Builder
	b.WriteString(o.Time.Format("15:04:05"))
	if ro := o.Rollout; ro != nil {
		fmt.Fprintf(&b, " %s step %d/%d canaryd %s", ro.Phase, ro.Step, ro.Steps, ro.Weights)
		if ro.LastVerdict != nil {
			fmt.Fprintf(&b, " verdict %s=%s", ro.LastVerdict.Gate, ro.LastVerdict.Result)
		}
	} else {
		b.WriteString(" canaryd not answering")
	}
	_, p2, n := split(o.Traffic.Recent, o.V1, o.V2)
	fmt.Fprintf(&b, " gateway %d/%d observed v2 %.0f%% of %d git %s", o.Gateway.Stable, o.Gateway.Canary, p2, n, o.Head.Short())
	return b.String()
}

// Key is what must change for Line to be printed again: the phase, step, weights, the
// last verdict's gate and result, the gateway's weights, the head and the notes.
func (o Observation) Key() string {
	k := fmt.Sprintf("%d/%d %s %d", o.Gateway.Stable, o.Gateway.Canary, o.Head.SHA, len(o.Notes))
	if ro := o.Rollout; ro != nil {
		k += fmt.Sprintf(" %s %d %s", ro.Phase, ro.Step, ro.Weights)
		if ro.LastVerdict != nil {
			k += " " + ro.LastVerdict.Gate + "=" + string(ro.LastVerdict.Result)
		}
	}
	return k
}
