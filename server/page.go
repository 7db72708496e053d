package server

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"short":       short,
	"trimSpan":    func(class string) string { return strings.ToLower(strings.TrimPrefix(class, "span-")) },
	"resultClass": resultClass,
	"mark":        resultMark,
	"phaseClass":  func(p rollout.Phase) string { return "phase-" + string(p) },
	"utc":         func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"clock":       func(t time.Time) string { return t.UTC().Format(time.TimeOnly) },
	"step1":       func(i int) int { return i + 1 },
	"refreshJS":   func() template.JS { return refreshJS },
	"pathEscape":  url.PathEscape,
	"latency":     func(d time.Duration) string { return d.Round(time.Microsecond).String() },
	"value":       func(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) },
}).ParseFS(templateFS, "templates/*.html"))

// The index shows a small chart for each rollout as long as there are no more than this
// many; with more, each rollout's chart is one click away.
const (
	indexChartMax    = 100
	indexChartEvents = 200
	pageEvents       = 500
)

// card is one rollout as a page shows it.
type card struct {
	Rollout
	NextTick string // "in 12s", "due", or ""
	Chart    *chart
	// Decisive is the failing verdict that rolled the run back, when the rollout is
	// RolledBack and its history holds it: the last verdict may be a later pass.
	Decisive *rollout.Verdict
	// CommitURL links Commit through Options.CommitURL, or is "".
	CommitURL string
	// Blocked says why the rollout cannot run (its step is Stuck, or its newest move
	// failed: a missing VirtualService, a manifest not found), or is "".
	Blocked string
}

type indexData struct {
	Title    string
	Refresh  bool
	Now      time.Time
	Cards    []card
	Counts   map[rollout.Phase]int
	Phases   []rollout.Phase
	NoCharts bool
}

type rolloutData struct {
	Title   string
	Refresh bool
	Now     time.Time
	Card    card
	Events  []eventRow
	Older   string // link to the next page of older events, or ""
	Paged   bool   // showing an older page: no auto-refresh
}

// eventRow is one history event in the detail page's table.
type eventRow struct {
	rollout.Event
	Anchor string
}

func (s *Server) indexPage(w http.ResponseWriter, r *http.Request) {
	rs, err := s.src.Rollouts(r.Context())
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	now := s.now()
	d := indexData{Title: "canaryd", Refresh: true, Now: now, Counts: map[rollout.Phase]int{}, Phases: rollout.Phases, NoCharts: len(rs) > indexChartMax}
	for _, ro := range rs {
		c := s.card(ro, now)
		d.Counts[ro.Phase]++
		if !d.NoCharts {
			evs, err := s.src.History(r.Context(), ro.Name, 0, indexChartEvents)
			if err != nil && !errors.Is(err, ErrNotFound) {
				s.pageError(w, r, err)
				return
			}
			c.Decisive = decisive(ro, evs)
			c.Blocked = blocked(ro, evs)
			link := func(seq uint64) string { return rolloutPath(ro.Name) + "#ev-" + strconv.FormatUint(seq, 10) }
			c.Chart = newChart(evs, chartEnd(ro, evs, now), smallChart, link)
		}
		d.Cards = append(d.Cards, c)
	}
	s.render(w, r, "index.html", d)
}

func (s *Server) rolloutPage(w http.ResponseWriter, r *http.Request) {
	ro, err := s.src.Rollout(r.Context(), r.PathValue("name"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	before, _ := strconv.ParseUint(r.URL.Query().Get("before"), 10, 64)
	evs, err := s.src.History(r.Context(), ro.Name, before, pageEvents)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	now := s.now()
	d := rolloutData{Title: ro.Name + " · canaryd", Refresh: before == 0, Now: now, Card: s.card(ro, now), Paged: before != 0}
	link := func(seq uint64) string { return "#ev-" + strconv.FormatUint(seq, 10) }
	d.Card.Chart = newChart(evs, chartEnd(ro, evs, now), fullChart, link)
	d.Card.Decisive = decisive(ro, evs)
	if before == 0 {
		d.Card.Blocked = blocked(ro, evs)
	}
	for _, ev := range evs {
		d.Events = append(d.Events, eventRow{Event: ev, Anchor: "ev-" + strconv.FormatUint(ev.Seq, 10)})
	}
	if len(evs) == pageEvents && evs[len(evs)-1].Seq > 1 {
		d.Older = fmt.Sprintf("%s?before=%d", rolloutPath(ro.Name), evs[len(evs)-1].Seq)
	}
	s.render(w, r, "rollout.html", d)
}

// chartEnd is where a rollout's time axis ends: now while it may still move, else its
// last event.
func chartEnd(ro Rollout, evs []rollout.Event, now time.Time) time.Time {
	if len(evs) > 0 && (ro.Phase.Terminal() || ro.Phase == rollout.Invalid) {
		return evs[0].Time
	}
	return now
}

func (s *Server) card(ro Rollout, now time.Time) card {
	c := card{Rollout: ro, CommitURL: commitLink(s.commitURL, ro.Commit)}
	switch {
	case ro.NextTick.IsZero():
	case !ro.NextTick.After(now):
		c.NextTick = "due"
	default:
		c.NextTick = "in " + ro.NextTick.Sub(now).Round(time.Second).String()
	}
	return c
}

func rolloutPath(name string) string { return "/rollouts/" + url.PathEscape(name) }

// render executes a template into a buffer first, so that a failing template yields a
// clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.pageError(w, r, fmt.Errorf("render %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	buf.WriteTo(w)
}

func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case r.Context().Err() != nil:
		return
	default:
		s.log.Error("page failed", "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	var buf bytes.Buffer
	pages.ExecuteTemplate(&buf, "error.html", map[string]any{"Status": status, "Text": http.StatusText(status), "Err": err.Error()})
	buf.WriteTo(w)
}
