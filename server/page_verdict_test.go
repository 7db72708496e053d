package server

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// TestRollbackCardShowsDecisiveVerdict: after a rollback the card names the failing check
// that caused it although a later check passed; verdicts carry a mark besides their
// colour; commits link through CommitURL.
func TestRollbackCardShowsDecisiveVerdict(t *testing.T) {
	src := newFakeSource(func() time.Time { return t0.Add(time.Hour) })
	fail := &rollout.Verdict{Gate: "grpc-success-rate", Result: rollout.Fail, Time: t0.Add(2 * time.Minute), Reason: "canary: 0.71 is below 0.99"}
	pass := &rollout.Verdict{Gate: "probe", Result: rollout.Pass, Time: t0.Add(4 * time.Minute)}
	sha := "4f1c2a9d0e7b5c3a1f2e4d6c8b0a9e7d5c3b1a2f"
	src.add(Rollout{Name: "hello", Phase: rollout.RolledBack, Run: 2, Step: 2, Steps: 3, Weights: rollout.CanaryAt(0),
		Stable: "v1", Canary: "v2", LastVerdict: pass, Commit: sha},
		rollout.Event{Time: t0, Kind: rollout.EventStarted, Run: 2, Step: 0, Weights: rollout.CanaryAt(0)},
		rollout.Event{Time: t0.Add(time.Minute), Kind: rollout.EventVerdict, Run: 2, Step: 1, Weights: rollout.CanaryAt(40),
			Verdict: &rollout.Verdict{Gate: "grpc-success-rate", Result: rollout.Fail, Time: t0.Add(time.Minute), Reason: "an older failure"}},
		rollout.Event{Time: t0.Add(2 * time.Minute), Kind: rollout.EventVerdict, Run: 2, Step: 1, Weights: rollout.CanaryAt(40), Verdict: fail},
		rollout.Event{Time: t0.Add(3 * time.Minute), Kind: rollout.EventRolledBack, Run: 2, Step: 1, Weights: rollout.CanaryAt(0), Commit: sha},
		rollout.Event{Time: t0.Add(4 * time.Minute), Kind: rollout.EventVerdict, Run: 2, Step: 1, Weights: rollout.CanaryAt(0), Verdict: pass},
	)
	srv := httptest.NewServer(New(Options{Source: src, CommitURL: "https://git.example.com/acme/deploy/commit/{sha}"}))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/", "/rollouts/hello"} {
		_, body := call(t, "GET", srv.URL+path, "", "")
		page := string(body)
		for _, want := range []string{
			`<dt>Rolled back by</dt><dd><span class="badge fail">✗ fail</span> grpc-success-rate`,
			"Rolled back: grpc-success-rate: canary: 0.71 is below 0.99",
			`<span class="badge pass">✓ pass</span> probe`,
			`<a href="https://git.example.com/acme/deploy/commit/` + sha + `"`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
		if strings.Contains(page, "an older failure</p>") {
			t.Errorf("%s shows an older failure as the decisive one", path)
		}
	}
}
