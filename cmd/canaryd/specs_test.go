package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

func TestParseSpecsMarksOnlyTheBadOneInvalid(t *testing.T) {
	good, err := os.ReadFile("../../deploy/examples/rollout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := os.ReadFile("testdata/bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(string(good), "name: grpc-helloworld-py", "name: other", 1)
	files := map[string][]byte{
		"rollouts/a.yaml":      []byte(other),
		"rollouts/bad.yaml":    []byte(strings.Replace(string(bad), "name: grpc-helloworld-py", "name: broken", 1)),
		"rollouts/syntax.yaml": []byte("spec: [unclosed\n"),
	}
	entries := parseSpecs(files)
	if len(entries) != 3 {
		t.Fatalf("%d entries, want 3: %v", len(entries), entries)
	}
	if e := entries["other"]; e == nil || e.doc == nil || len(e.problems) != 0 || e.sched == nil {
		t.Errorf("the valid spec: %+v", e)
	}
	if e := entries["broken"]; e == nil || e.doc != nil || len(e.problems) != 4 ||
		!strings.HasPrefix(e.problems[0].String(), "rollouts/bad.yaml:9:11: spec.canary") {
		t.Errorf("the invalid spec: %+v", e)
	}
	if e := entries["syntax"]; e == nil || e.doc != nil || len(e.problems) == 0 {
		t.Errorf("the file that does not parse: %+v", e)
	}

	var c catalog
	docs := c.replace(entries)
	if len(docs) != 1 || docs[0].Name() != "other" {
		t.Fatalf("valid documents %v, want only other", docs)
	}
	again := c.replace(parseSpecs(files))
	if again[0] != docs[0] {
		t.Errorf("an unchanged spec got a new document: the controller would see a change that is not one")
	}
	files["rollouts/a.yaml"] = []byte(strings.Replace(other, "*/10 * * * *", "*/5 * * * *", 1))
	if changed := c.replace(parseSpecs(files)); changed[0] == docs[0] {
		t.Errorf("a changed spec kept its old document")
	}
}

// TestSpecCacheReparsesOnlyChangedFiles: a reload reuses the parse of every spec file whose
// bytes did not change (the same documents), parses a changed one again, and forgets a
// file that is gone.
func TestSpecCacheReparsesOnlyChangedFiles(t *testing.T) {
	good, err := os.ReadFile("../../deploy/examples/rollout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := strings.Replace(string(good), "name: grpc-helloworld-py", "name: a", 1)
	b := strings.Replace(string(good), "name: grpc-helloworld-py", "name: b", 1)
	files := map[string][]byte{"rollouts/a.yaml": []byte(a), "rollouts/b.yaml": []byte(b)}
	c := &specCache{}
	first := c.parseSpecs(files)
	files["rollouts/b.yaml"] = []byte(strings.Replace(b, "*/10 * * * *", "*/5 * * * *", 1))
	second := c.parseSpecs(files)
	if first["a"].doc == nil || second["a"].doc != first["a"].doc {
		t.Errorf("an unchanged file was parsed again")
	}
	if second["b"].doc == nil || second["b"].doc == first["b"].doc {
		t.Errorf("a changed file kept its old parse")
	}
	delete(files, "rollouts/a.yaml")
	c.parseSpecs(files)
	if _, ok := c.files["rollouts/a.yaml"]; ok || len(c.files) != 1 {
		t.Errorf("the cache holds %d files after a.yaml was removed: %v", len(c.files), c.files)
	}
}

func TestGitUnreachable(t *testing.T) {
	ok := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		now  time.Duration // after the last good fetch
		want bool
	}{{0, false}, {2 * time.Minute, false}, {2*time.Minute + time.Second, true}, {time.Hour, true}}
	for _, tt := range tests {
		why := gitUnreachable(ok, "dial tcp: i/o timeout", ok.Add(tt.now), 2*time.Minute)
		if (why != "") != tt.want {
			t.Errorf("%s after the last fetch: %q, want unreachable %v", tt.now, why, tt.want)
		}
		if tt.want && !strings.Contains(why, "i/o timeout") {
			t.Errorf("the reason %q does not say why the fetch failed", why)
		}
	}
	if why := gitUnreachable(time.Time{}, "", ok, time.Minute); why != "" {
		t.Errorf("no fetch yet counts as unreachable: %q", why)
	}
}

// TestReplaceKeepsTheLastValidSpec: a rollout whose spec turns invalid runs on its last valid
// document, marked Invalidated with the new problems; the same invalid spec read again is no
// change; a fixed spec replaces it; a spec that was never valid does not run.
func TestReplaceKeepsTheLastValidSpec(t *testing.T) {
	good, err := os.ReadFile("../../deploy/examples/rollout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(good), "steps: [0, 40, 100]", "steps: [0, 40, 40, 100]", 1)
	if broken == string(good) {
		t.Fatal("the example's steps are not [0, 40, 100]")
	}
	files := map[string][]byte{"rollouts/a.yaml": good, "rollouts/new.yaml": []byte(strings.Replace(broken, "name: grpc-helloworld-py", "name: new", 1))}
	var c catalog
	first := c.replace(parseSpecs(files))
	if len(first) != 1 || first[0].Name() != "grpc-helloworld-py" {
		t.Fatalf("documents %v, want only the valid one", first)
	}
	files["rollouts/a.yaml"] = []byte(broken)
	held := c.replace(parseSpecs(files))
	if len(held) != 1 || held[0] == first[0] || held[0].Spec.Steps[2] != 100 || len(held[0].Invalidated) == 0 {
		t.Fatalf("after the spec turned invalid: %+v; want the last valid spec, marked Invalidated", held)
	}
	if e, _ := c.get("grpc-helloworld-py"); !e.onLastValid() || len(e.problems) == 0 ||
		!strings.Contains(e.problems[0].String(), "rollouts/a.yaml:") || !strings.Contains(e.problems[0].Msg, "duplicated") {
		t.Errorf("the entry on its last valid spec: %+v", e)
	}
	if again := c.replace(parseSpecs(files)); len(again) != 1 || again[0] != held[0] {
		t.Errorf("the same invalid spec read again changed the document")
	}
	files["rollouts/a.yaml"] = []byte(strings.Replace(string(good), "steps: [0, 40, 100]", "steps: [0, 20, 100]", 1))
	fixed := c.replace(parseSpecs(files))
	if len(fixed) != 1 || len(fixed[0].Invalidated) != 0 || fixed[0].Spec.Steps[1] != 20 {
		t.Errorf("after the fix: %+v", fixed)
	}
	if e, _ := c.get("new"); e.doc != nil || e.onLastValid() {
		t.Errorf("a spec never valid runs: %+v", e)
	}
}

// TestMemoScheduleAnswersAsItsSchedule asks a memoized cron schedule for the next tick at
// times before, between and on activations, in and out of order: every answer is the one
// the schedule itself gives.
func TestMemoScheduleAnswersAsItsSchedule(t *testing.T) {
	plain, err := rollout.NewSchedule("*/15 * * * *", "")
	if err != nil {
		t.Fatal(err)
	}
	m := &memoSchedule{s: plain}
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, d := range []time.Duration{0, time.Minute, 14 * time.Minute, 15 * time.Minute, 15*time.Minute + time.Nanosecond,
		2 * time.Minute, 31 * time.Minute, 29 * time.Minute, 45 * time.Minute, -time.Hour, 0} {
		at := base.Add(d)
		if got, want := m.Next(at), plain.Next(at); !got.Equal(want) {
			t.Errorf("Next(%s) = %s, want %s", at.Format(time.TimeOnly), got.Format(time.TimeOnly), want.Format(time.TimeOnly))
		}
	}
}
