package store

import (
	bolt "go.etcd.io/bbolt"

	"github.com/canarydio/canaryd/rollout"
)

// foldLookback is how far back from a history's newest event a new verdict looks for the
// last verdict of its gate: about as many events as a rollout has gates.
const foldLookback = 32

// run is the newest verdict event of one gate while only verdicts have followed it: the one
// an identical verdict folds into.
type run struct {
	ev    rollout.Event
	dirty bool // folded into since it was read or written
}

// tailRuns reads the verdicts at the end of history h, back to the first other event or the
// first gate seen twice (a check saves every gate's verdict together), and returns the
// newest of each gate.
func tailRuns(h *bolt.Bucket) (map[string]*run, error) {
	runs := map[string]*run{}
	c := h.Cursor()
	n := 0
	for k, v := c.Last(); k != nil && n < foldLookback; k, v = c.Prev() {
		n++
		var ev rollout.Event
		if err := decode(v, &ev); err != nil {
			return nil, err
		}
		if ev.Kind != rollout.EventVerdict || ev.Verdict == nil {
			break
		}
		if _, ok := runs[ev.Verdict.Gate]; ok {
			break // a gate again: a whole check, every gate, is behind
		}
		runs[ev.Verdict.Gate] = &run{ev: ev}
	}
	return runs, nil
}

// sameVerdict reports whether b repeats a: the same gate says the same thing about the same
// step of the same run. Evidence may differ; the folded event keeps the newest.
func sameVerdict(a, b rollout.Event) bool {
	return a.Run == b.Run && a.Step == b.Step && a.Weights == b.Weights && a.Phase == b.Phase &&
		a.Message == b.Message && a.Reason == b.Reason && a.Commit == b.Commit && a.Actor == b.Actor &&
		a.Verdict.Gate == b.Verdict.Gate && a.Verdict.Result == b.Verdict.Result && a.Verdict.Reason == b.Verdict.Reason
}
