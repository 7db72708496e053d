package analysis

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// binomial draws the number of failures in n calls that each fail with probability p.
func binomial(r *rand.Rand, n int, p float64) int64 {
	var k int64
	for range n {
		if r.Float64() < p {
			k++
		}
	}
	return k
}

// simulate runs the test over looks checks of canaryN and stableN calls a check and
// reports whether it ever rolled back, and at which look (-1 for never).
func simulate(r *rand.Rand, looks, canaryN, stableN int, canaryP, stableP, alpha float64) int {
	t := NewSequential(0.5)
	for i := range looks {
		t.Observe(int64(canaryN), binomial(r, canaryN, canaryP), int64(stableN), binomial(r, stableN, stableP))
		if t.Worse() >= 1/alpha {
			return i
		}
	}
	return -1
}

// TestSequentialFalseRollbacksBoundedByAlpha checks Ville's bound by simulation: canaries
// exactly as good as stable, looked at 120 times each, are rolled back in at most alpha of
// the runs, at several error rates and traffic splits.
func TestSequentialFalseRollbacksBoundedByAlpha(t *testing.T) {
	const runs, alpha = 2000, 0.05
	for _, tc := range []struct {
		name             string
		canaryN, stableN int
		p                float64
	}{
		{"6% errors, 40/60 split", 20, 30, 0.06},
		{"2% errors, 40/60 split", 20, 30, 0.02},
		{"20% errors, 10/90 split", 5, 45, 0.2},
		{"1% errors, 5 calls/s", 2, 3, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			false := 0
			for range runs {
				if simulate(r, 120, tc.canaryN, tc.stableN, tc.p, tc.p, alpha) >= 0 {
					false++
				}
			}
			rate := float64(false) / runs
			t.Logf("false rollbacks: %d of %d (%.4f, alpha %.2f)", false, runs, rate, alpha)
			if rate > alpha {
				t.Errorf("false rollback rate %.4f exceeds alpha %.2f", rate, alpha)
			}
		})
	}
}

// TestSequentialDetectsTwoPercentRegression checks the power: a canary failing 2% of its
// calls more than stable is caught within 1000 canary calls in nearly every run.
func TestSequentialDetectsTwoPercentRegression(t *testing.T) {
	const runs, alpha = 500, 0.01
	for _, tc := range []struct {
		name       string
		stableP    float64
		looks      int
		canaryN    int
		stableN    int
		minCaught  float64
		canaryCall int // looks × canaryN, for the name's sake
	}{
		{"stable 0%, 50 calls/s at 40%", 0, 50, 20, 30, 0.99, 1000},
		{"stable 1%, 50 calls/s at 40%", 0.01, 125, 20, 30, 0.95, 2500},
		{"stable 0%, 5 calls/s at 40%", 0, 500, 2, 3, 0.99, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			caught := 0
			for range runs {
				if simulate(r, tc.looks, tc.canaryN, tc.stableN, tc.stableP+0.02, tc.stableP, alpha) >= 0 {
					caught++
				}
			}
			rate := float64(caught) / runs
			t.Logf("caught within %d canary calls: %d of %d (%.3f)", tc.looks*tc.canaryN, caught, runs, rate)
			if rate < tc.minCaught {
				t.Errorf("caught %.3f of 2%% regressions, want at least %.2f", rate, tc.minCaught)
			}
		})
	}
}

// TestSequentialNotWorse checks the mirror test: a canary as good as stable is shown not
// worse than 1.5 times stable once there are enough errors, and a canary twice as bad
// rarely is.
func TestSequentialNotWorse(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const runs, alpha = 500, 0.01
	shown := func(canaryP float64) int {
		n := 0
		for range runs {
			s := NewSequential(0.5)
			for range 200 {
				s.Observe(20, binomial(r, 20, canaryP), 30, binomial(r, 30, 0.06))
			}
			if s.NotWorse() >= 1/alpha {
				n++
			}
		}
		return n
	}
	if same := shown(0.06); same < runs*9/10 {
		t.Errorf("an equal canary was shown not worse in %d of %d runs, want at least 90%%", same, runs)
	}
	if worse := shown(0.12); float64(worse)/runs > alpha {
		t.Errorf("a canary twice as bad was shown not worse in %d of %d runs, more than alpha", worse, runs)
	}
}

func TestSequentialIgnoresOneSidedLooks(t *testing.T) {
	s := NewSequential(0.5)
	s.Observe(100, 10, 0, 0) // the canary alone: nothing to compare
	s.Observe(0, 0, 100, 10)
	if w := s.Worse(); w != 1 {
		t.Errorf("Worse() = %v after looks without both subsets, want 1", w)
	}
	if s.Looks() != 2 {
		t.Errorf("Looks() = %d, want 2", s.Looks())
	}
	if m, want := mixture([]float64{700, 700 + math.Log(3)}), 2*math.Exp(700); math.Abs(m-want)/want > 1e-9 {
		t.Errorf("mixture = %v, want %v", m, want)
	}
}

// TestAloneTest checks the one-sample test of a canary serving alone at 100 % against
// stable's rate earlier in the run: no more than alpha false rollbacks for a canary as good
// as stable was, and a 2% regression over a stable without errors caught.
func TestAloneTest(t *testing.T) {
	const runs, alpha = 1000, 0.01
	r := rand.New(rand.NewPCG(7, 8))
	rollbacks := func(baseline rollout.SubsetCounts, canaryP float64, looks int) int {
		n := 0
		p0 := aloneNull(baseline, 0.5)
		for range runs {
			var logs []float64
			for range looks {
				logs = observeAlone(logs, 50, binomial(r, 50, canaryP), p0)
				if mixture(logs) >= 1/alpha {
					n++
					break
				}
			}
		}
		return n
	}
	if n := rollbacks(rollout.SubsetCounts{Requests: 1000, Errors: 60}, 0.06, 100); float64(n)/runs > alpha {
		t.Errorf("a canary as good as stable (6%%) was rolled back in %d of %d runs, more than alpha", n, runs)
	}
	if n := rollbacks(rollout.SubsetCounts{Requests: 1000}, 0.02, 20); n < runs*99/100 {
		t.Errorf("a canary at 2%% over a stable at 0%% was caught in %d of %d runs within 1000 calls, want 99%%", n, runs)
	}
}
