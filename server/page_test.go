package server

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/golden"
)

func TestPagesGolden(t *testing.T) {
	url := newTestServer(t, sampleSource(), "", nil)
	for _, tc := range []struct{ path, file string }{
		{"/", "index.html"},
		{"/rollouts/grpc-helloworld-py", "rollout.html"},
		{"/rollouts/grpc-helloworld-py?before=5", "rollout-older.html"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			status, body := call(t, "GET", url+tc.path, "", "")
			if status != 200 {
				t.Fatalf("%s: %d\n%s", tc.path, status, body)
			}
			golden.Check(t, filepath.Join("testdata", tc.file), body)
		})
	}
}

func TestPageIsSelfContained(t *testing.T) {
	url := newTestServer(t, sampleSource(), "", nil)
	for _, path := range []string{"/", "/rollouts/grpc-helloworld-py"} {
		status, body := call(t, "GET", url+path, "", "")
		page := string(body)
		if status != 200 {
			t.Fatalf("%s: %d", path, status)
		}
		// Nothing is loaded from anywhere: no stylesheets, no fonts, no images; one inline
		// script, the refresh, and no other.
		if n := strings.Count(page, "<script"); n != 1 || !strings.Contains(page, "<script>"+refreshScript+"</script>") {
			t.Errorf("%s carries %d scripts, want only the inline refresh script verbatim", path, n)
		}
		bare := strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")
		bare = strings.ReplaceAll(bare, refreshScript, "")
		for _, bad := range []string{"<link", "@import", "src=", "url(", "http://", "https://", "<img", `http-equiv="refresh"`} {
			if strings.Contains(bare, bad) {
				t.Errorf("%s carries %q: the page must work offline and never reload itself", path, bad)
			}
		}
		if !strings.Contains(page, `id="rollout-grpc-helloworld-py" data-live`) {
			t.Errorf("%s marks no card as live", path)
		}
	}
	_, body := call(t, "GET", url+"/rollouts/grpc-helloworld-py?before=5", "", "")
	if strings.Contains(string(body), "<script") {
		t.Error("an older page of history refreshes itself, which would lose the reader's place")
	}
}

func TestPageEscapes(t *testing.T) {
	src := sampleSource()
	src.add(Rollout{Name: "evil", Phase: rollout.Progressing, Steps: 2, Step: 1, Stable: "v1", Canary: "v2",
		Weights: rollout.CanaryAt(0), Message: `<script>alert("x")</script>`},
		rollout.Event{Time: t0, Kind: rollout.EventVerdict, Verdict: &rollout.Verdict{Gate: "probe", Result: rollout.Fail, Reason: `<img src=x onerror=alert(1)>`}})
	url := newTestServer(t, src, "", nil)
	for _, path := range []string{"/", "/rollouts/evil"} {
		_, body := call(t, "GET", url+path, "", "")
		if page := strings.ReplaceAll(string(body), "<script>"+refreshScript, ""); strings.Contains(page, "<script>") || strings.Contains(page, "<img") {
			t.Errorf("%s renders a message as markup", path)
		}
		if !strings.Contains(string(body), "&lt;script&gt;") {
			t.Errorf("%s does not show the escaped message", path)
		}
	}
}

func TestChart(t *testing.T) {
	ev := func(sec int, kind rollout.EventKind, canary int, commit string, res rollout.Result) rollout.Event {
		e := rollout.Event{Seq: uint64(sec), Time: t0.Add(time.Duration(sec) * time.Second), Kind: kind, Weights: rollout.CanaryAt(canary), Commit: commit}
		if res != "" {
			e.Verdict = &rollout.Verdict{Gate: "g", Result: res}
		}
		return e
	}
	// Newest first, as Source.History returns them.
	evs := []rollout.Event{
		ev(100, rollout.EventRolledBack, 0, "c3", ""),
		ev(90, rollout.EventVerdict, 40, "c2", rollout.Fail),
		ev(80, rollout.EventMoveFailed, 100, "c2", ""), // a target, not a weight in force
		ev(60, rollout.EventVerdict, 40, "c2", rollout.Pass),
		ev(50, rollout.EventStep, 40, "c2", ""),
		ev(40, rollout.EventIntent, 40, "c1", ""), // a target, not a weight in force
		ev(0, rollout.EventStarted, 0, "c1", ""),
	}
	c := newChart(evs, t0.Add(200*time.Second), chartSize{W: 254, H: 122}, func(seq uint64) string { return "#" + string(rune('a'+seq/10)) })
	// The plot spans x 40..240 for 0..200s (1 unit a second) and y 100..10 for 0..100 %.
	if want := "M40 100H90V64H140V100H240"; c.Line != want {
		t.Errorf("line %q, want %q", c.Line, want)
	}
	wantDots := []marker{
		{X: 100, Y: 64, Class: "verdict pass", Href: "#g", Title: "09:01:00 g: pass at c2"},
		{X: 130, Y: 64, Class: "verdict fail", Href: "#j", Title: "09:01:30 g: fail at c2", D: "M124 59.5H136L130 70Z"},
	}
	if diff := cmp.Diff(wantDots, c.Dots); diff != "" {
		t.Errorf("dots (-want +got):\n%s", diff)
	}
	var commits []string
	for _, m := range c.Commits {
		commits = append(commits, m.Title)
	}
	want := []string{"09:00:50 step to 60/40, commit c2", "09:01:40 rolled-back to 100/0, commit c3"}
	if diff := cmp.Diff(want, commits); diff != "" {
		t.Errorf("commits (-want +got):\n%s", diff)
	}
	if newChart(nil, t0, fullChart, nil) != nil {
		t.Error("a chart without events")
	}
	if one := newChart(evs[len(evs)-1:], t0, fullChart, func(uint64) string { return "" }); one == nil || one.Line == "" {
		t.Error("a single event draws no line")
	}
}

func TestPhaseSpans(t *testing.T) {
	ev := func(sec int, p rollout.Phase) rollout.Event {
		return rollout.Event{Time: t0.Add(time.Duration(sec) * time.Second), Phase: p}
	}
	// Newest first: progressing 0-10, paused 10-30 (two events), progressing 30-40,
	// overridden from 40 to the end at 60.
	evs := []rollout.Event{ev(40, rollout.Overridden), ev(30, rollout.Progressing), ev(20, rollout.Paused), ev(10, rollout.Paused), ev(0, rollout.Progressing)}
	x := func(tm time.Time) float64 { return float64(tm.Sub(t0) / time.Second) }
	got := phaseSpans(evs, t0.Add(60*time.Second), x)
	want := []span{
		{X1: 10, X2: 30, Class: "span-Paused", Title: "Paused from 09:00:10"},
		{X1: 40, X2: 60, Class: "span-Overridden", Title: "Overridden from 09:00:40"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(span{})); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}

func TestIndexWithManyRollouts(t *testing.T) {
	src := newFakeSource(func() time.Time { return t0 })
	for i := range indexChartMax + 1 {
		src.add(Rollout{Name: fmt.Sprintf("svc-%03d", i), Phase: rollout.Progressing, Steps: 3, Step: 1, Stable: "v1", Canary: "v2", Weights: rollout.CanaryAt(0)},
			rollout.Event{Time: t0, Kind: rollout.EventStarted, Phase: rollout.Progressing})
	}
	url := newTestServer(t, src, "", nil)
	status, body := call(t, "GET", url+"/", "", "")
	page := string(body)
	if status != 200 || strings.Count(page, `<section class="card"`) != indexChartMax+1 {
		t.Fatalf("%d, %d cards", status, strings.Count(page, `<section class="card"`))
	}
	if strings.Contains(page, "<svg") || !strings.Contains(page, "Charts are on each rollout's page") {
		t.Error("with more than indexChartMax rollouts the index still draws charts, or does not say where they are")
	}
	if _, body := call(t, "GET", url+"/rollouts/svc-100", "", ""); !strings.Contains(string(body), "<svg") {
		t.Error("the rollout's own page has no chart")
	}
}
