package server

import (
	"fmt"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// markLabels are the events flagged on the timeline, with their label.
var markLabels = map[rollout.EventKind]string{
	rollout.EventRolledBack: "rollback",
	rollout.EventPromoted:   "promote",
	rollout.EventAborted:    "abort",
}

// boundaries adds ev's run boundary (the first event of a run after another run's) and its
// mark (a rollback, promotion or abort; once per kind and run, as an abort is recorded
// when asked and again when it lands).
func (c *chart) boundaries(ev rollout.Event, x float64) {
	at := ev.Time.UTC().Format(time.TimeOnly)
	if c.lastRun != 0 && ev.Run != c.lastRun && ev.Run != 0 {
		c.Runs = append(c.Runs, boundary{X: x, Class: "run", Label: fmt.Sprintf("run %d", ev.Run),
			Title: fmt.Sprintf("run %d began at %s", ev.Run, at)})
	}
	if ev.Run != 0 {
		c.lastRun = ev.Run
	}
	label, ok := markLabels[ev.Kind]
	if !ok {
		return
	}
	if ev.Kind == rollout.EventRolledBack && ev.Actor != "" {
		label = "undo" // an operator's rollback
	}
	if n := len(c.Marks); n > 0 && c.Marks[n-1].Label == label && c.marked == ev.Run {
		return
	}
	c.marked = ev.Run
	title := fmt.Sprintf("%s %s, canary %d%%", at, label, ev.Weights.Canary)
	if ev.Actor != "" {
		title += " by " + ev.Actor
	}
	if ev.Reason != "" {
		title += ": " + ev.Reason
	}
	c.Marks = append(c.Marks, boundary{X: x, Class: "mark " + string(ev.Kind), Label: label, Title: title})
}

// verdictShape is the SVG path of a verdict marker centred at x, y: a pass is a circle
// (no path), a fail a triangle pointing down, an inconclusive a diamond, an error a
// triangle pointing up.
func verdictShape(r rollout.Result, x, y float64) string {
	switch r {
	case rollout.Pass:
		return ""
	case rollout.Fail:
		return fmt.Sprintf("M%g %gH%gL%g %gZ", x-6, y-4.5, x+6, x, y+6)
	case rollout.Inconclusive:
		return fmt.Sprintf("M%g %gL%g %gL%g %gL%g %gZ", x, y-6, x+6, y, x, y+6, x-6, y)
	}
	return fmt.Sprintf("M%g %gL%g %gH%gZ", x, y-6, x+6, y+4.5, x-6)
}
