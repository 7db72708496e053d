package server

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// chart is the timeline of one rollout, laid out for an inline SVG: the canary weight over
// time as a step line, each verdict a dot coloured by its result, each commit a square.
// Coordinates are in the SVG's viewBox units.
type chart struct {
	W, H    int
	Left    float64 // x of the plot's left edge
	Right   float64
	Top     float64
	Bottom  float64
	Line    string // SVG path of the canary weight
	Grid    []gridLine
	Ticks   []timeTick
	Dots    []marker
	Commits []marker
	// Spans shade the stretches when the rollout was Paused or Overridden.
	Spans []span
	// Runs are the boundaries where a new run began; Marks flag the rollbacks, undos,
	// promotions and aborts.
	Runs  []boundary
	Marks []boundary

	lastRun, marked int // the run of the last event laid out, and of the last mark
}

// boundary is a vertical line across the plot with a label at its top.
type boundary struct {
	X     float64
	Class string
	Label string
	Title string
}

// span is a stretch of the time axis in one phase.
type span struct {
	X1, X2 float64
	Class  string
	Title  string
}

type gridLine struct {
	Y     float64
	Label string
}

type timeTick struct {
	X      float64
	Label  string
	Anchor string // text-anchor
}

// marker is a verdict or commit on the chart, linking to its row in the event table.
type marker struct {
	X, Y  float64
	Class string
	Href  string
	Title string
	// D is the SVG path of a verdict's shape other than a pass's circle, so that results
	// differ by shape as well as by colour.
	D string
}

// chartSize is the viewBox of a chart: the detail page's full one, or the index's small one.
type chartSize struct{ W, H int }

var (
	fullChart  = chartSize{800, 240}
	smallChart = chartSize{800, 110}
)

// newChart lays out events (newest first, as Source.History returns them). end is where
// the time axis stops (now for a running rollout, else the last event); href makes the
// link of an event's row. It returns nil when there are no events.
func newChart(evs []rollout.Event, end time.Time, size chartSize, href func(seq uint64) string) *chart {
	if len(evs) == 0 {
		return nil
	}
	c := &chart{W: size.W, H: size.H, Left: 40, Right: float64(size.W) - 14, Top: 10, Bottom: float64(size.H) - 22}
	start := evs[len(evs)-1].Time
	if last := evs[0].Time; end.Before(last) {
		end = last
	}
	if !end.After(start) {
		end = start.Add(time.Second)
	}
	x := func(t time.Time) float64 {
		return round1(c.Left + (c.Right-c.Left)*float64(t.Sub(start))/float64(end.Sub(start)))
	}
	y := func(w int) float64 { return round1(c.Bottom - (c.Bottom-c.Top)*float64(w)/100) }
	for _, w := range []int{0, 25, 50, 75, 100} {
		c.Grid = append(c.Grid, gridLine{Y: y(w), Label: fmt.Sprintf("%d%%", w)})
	}
	c.Ticks = timeTicks(start, end, x)
	var path strings.Builder
	weight := -1
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		if ev.Kind != rollout.EventIntent && ev.Kind != rollout.EventMoveFailed && ev.Kind != rollout.EventNotified {
			switch {
			case weight < 0:
				fmt.Fprintf(&path, "M%g %g", x(ev.Time), y(ev.Weights.Canary))
			case ev.Weights.Canary != weight:
				fmt.Fprintf(&path, "H%gV%g", x(ev.Time), y(ev.Weights.Canary))
			}
			weight = ev.Weights.Canary
		}
		c.boundaries(ev, x(ev.Time))
		if m, ok := eventMarker(ev, x(ev.Time), y(max(weight, 0)), href); ok {
			if ev.Kind == rollout.EventVerdict {
				c.Dots = append(c.Dots, m)
			} else {
				c.Commits = append(c.Commits, m)
			}
		}
	}
	if weight >= 0 {
		fmt.Fprintf(&path, "H%g", x(end))
	}
	c.Spans = phaseSpans(evs, end, x)
	c.Line = path.String()
	// Draw passes first, so that a failure next to a pass stays visible on top.
	sort.SliceStable(c.Dots, func(i, j int) bool {
		return strings.HasSuffix(c.Dots[i].Class, " pass") && !strings.HasSuffix(c.Dots[j].Class, " pass")
	})
	return c
}

// phaseSpans returns the stretches of evs (newest first) spent Paused or Overridden.
func phaseSpans(evs []rollout.Event, end time.Time, x func(time.Time) float64) []span {
	var spans []span
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		if ev.Phase != rollout.Paused && ev.Phase != rollout.Overridden {
			continue
		}
		until := end
		if i > 0 {
			until = evs[i-1].Time
		}
		if n := len(spans); n > 0 && spans[n-1].Class == "span-"+string(ev.Phase) && spans[n-1].X2 == x(ev.Time) {
			spans[n-1].X2 = x(until) // the same stretch goes on
			continue
		}
		spans = append(spans, span{X1: x(ev.Time), X2: x(until), Class: "span-" + string(ev.Phase),
			Title: fmt.Sprintf("%s from %s", ev.Phase, ev.Time.UTC().Format(time.TimeOnly))})
	}
	return spans
}

// eventMarker returns the marker of a verdict, or of an event that made a commit.
func eventMarker(ev rollout.Event, x, y float64, href func(uint64) string) (marker, bool) {
	m := marker{X: x, Y: y, Href: href(ev.Seq)}
	switch {
	case ev.Kind == rollout.EventVerdict && ev.Verdict != nil:
		v := ev.Verdict
		m.Class = "verdict " + resultClass(v.Result)
		m.D = verdictShape(v.Result, x, y)
		m.Title = fmt.Sprintf("%s %s: %s", ev.Time.UTC().Format(time.TimeOnly), v.Gate, v.Result)
		if v.Reason != "" {
			m.Title += " (" + v.Reason + ")"
		}
		if ev.Commit != "" {
			m.Title += " at " + short(ev.Commit)
		}
		return m, true
	case ev.Commit != "" && commitKinds[ev.Kind]:
		m.Class = "commit"
		m.Title = fmt.Sprintf("%s %s to %s, commit %s", ev.Time.UTC().Format(time.TimeOnly), ev.Kind, ev.Weights, short(ev.Commit))
		return m, true
	}
	return marker{}, false
}

// commitKinds are the events whose Commit is one they made.
var commitKinds = map[rollout.EventKind]bool{
	rollout.EventStep: true, rollout.EventRolledBack: true, rollout.EventAborted: true,
	rollout.EventPromoted: true, rollout.EventOverridden: true,
}

// timeTicks returns five labels spread over start..end.
func timeTicks(start, end time.Time, x func(time.Time) float64) []timeTick {
	layout := time.TimeOnly
	if end.Sub(start) > 20*time.Hour {
		layout = "Jan 2 15:04"
	}
	const n = 4
	ticks := make([]timeTick, 0, n+1)
	for i := 0; i <= n; i++ {
		t := start.Add(end.Sub(start) * time.Duration(i) / n)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case n:
			anchor = "end"
		}
		ticks = append(ticks, timeTick{X: x(t), Label: t.UTC().Format(layout), Anchor: anchor})
	}
	return ticks
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// resultClass is the CSS class of a verdict's result.
func resultClass(r rollout.Result) string {
	switch r {
	case rollout.Pass, rollout.Fail, rollout.Inconclusive, rollout.Error:
		return string(r)
	}
	return "unknown"
}

// short abbreviates a commit hash to 12 characters.
func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// Width is the span's width.
func (s span) Width() float64 { return round1(s.X2 - s.X1) }

// PlotHeight is the height of the plot area.
func (c *chart) PlotHeight() float64 { return c.Bottom - c.Top }

// SpanKinds lists the classes of the spans on the chart, once each, for the legend.
func (c *chart) SpanKinds() []string {
	var kinds []string
	for _, s := range c.Spans {
		if !slices.Contains(kinds, s.Class) {
			kinds = append(kinds, s.Class)
		}
	}
	return kinds
}
