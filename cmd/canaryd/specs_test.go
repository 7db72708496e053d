package main

import (
	"os"
	"strings"
	"testing"
	"time"
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
