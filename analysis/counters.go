package analysis

import (
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
)

// Limits that keep the counters' memory bounded.
const (
	// maxTracked is how many rollout gates keep counters; the least recently checked is
	// dropped first.
	maxTracked = 1024
	// maxSeries is how many raw series one gate remembers; beyond it, new series are
	// counted from their first look (their earlier increase is lost, never invented).
	maxSeries = 20000
	// minBaseline is how many stable calls a step needs to be the baseline of a canary
	// that later serves alone.
	minBaseline = 100
)

// sample is one raw series' value at a look.
type sample struct {
	labels model.Metric
	value  float64
}

// counters remembers the raw values of one gate's counter series between looks and turns
// each look into increments. A series it has not seen before, at a look after the first,
// counts as having started at 0 (Envoy creates a series at its first request, so its first
// value is all increase); a value below the previous one is a counter reset, and the new
// value is the increase. Series missing from a look are kept, so a scrape gap loses
// nothing. It is not safe for concurrent use.
type counters struct {
	last   map[model.Fingerprint]float64
	looked bool
	at     time.Time
}

func newCounters() *counters { return &counters{last: map[model.Fingerprint]float64{}} }

// look records the samples and returns each one's increase since the previous look; at
// the first look every increase is 0 (it is the baseline).
func (c *counters) look(samples []sample, now time.Time) []float64 {
	inc := make([]float64, len(samples))
	for i, s := range samples {
		fp := s.labels.Fingerprint()
		prev, seen := c.last[fp]
		switch {
		case seen && s.value >= prev:
			inc[i] = s.value - prev
		case seen: // reset: the counter restarted from 0
			inc[i] = s.value
		case c.looked:
			inc[i] = s.value // a new series started at 0
		}
		if seen || len(c.last) < maxSeries {
			c.last[fp] = s.value
		}
	}
	c.looked, c.at = true, now
	return inc
}

// tally is one gate's counts in the current step.
type tally struct {
	key     rollout.StepKey
	canary  rollout.SubsetCounts
	stable  rollout.SubsetCounts
	test    *Sequential
	tripped bool // the test crossed 1/alpha: the step's verdict stays Fail
	// baseline is stable's counts in an earlier step of the run, for a canary that serves
	// alone (100 %); alone holds the log likelihood ratios of its one-sample test.
	baseline *rollout.SubsetCounts
	alone    []float64
	// buckets are the latency histograms' increases in the step, per subset and le.
	buckets map[string]map[float64]float64
}

// tracked is what one gate of one rollout remembers between checks.
type tracked struct {
	counters *counters
	tally    *tally
	used     time.Time
}

// tracker holds the counters of every vs-stable gate, keyed by rollout and gate. It is
// safe for concurrent use; each entry is used under the tracker's lock.
type tracker struct {
	mu      sync.Mutex
	entries map[string]*tracked
}

// with runs f on the entry of rollout and gate, creating it, under the lock. A step or
// run other than the entry's starts a fresh tally; the counters carry on, so increases
// since the last look of the previous step are not lost. Counters older than stale are
// dropped: a look after a long silence takes a new baseline.
func (t *tracker) with(key rollout.StepKey, gate string, now time.Time, stale time.Duration, f func(*tracked)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = map[string]*tracked{}
	}
	id := key.Rollout + "\x00" + gate
	e := t.entries[id]
	if e == nil {
		t.evict()
		e = &tracked{counters: newCounters()}
		t.entries[id] = e
	}
	if e.counters.looked && now.Sub(e.counters.at) > stale {
		e.counters = newCounters()
	}
	if e.tally == nil || e.tally.key.Run != key.Run || e.tally.key.Step != key.Step || !e.tally.key.Since.Equal(key.Since) {
		next := &tally{key: key, buckets: map[string]map[float64]float64{}}
		if old := e.tally; old != nil && old.key.Run == key.Run {
			next.baseline = old.baseline
			if old.stable.Requests >= minBaseline {
				b := old.stable
				next.baseline = &b
			}
		}
		e.tally = next
	}
	e.used = now
	f(e)
}

// evict drops the least recently used entry when the tracker is full.
func (t *tracker) evict() {
	if len(t.entries) < maxTracked {
		return
	}
	var oldest string
	var at time.Time
	for id, e := range t.entries {
		if oldest == "" || e.used.Before(at) {
			oldest, at = id, e.used
		}
	}
	delete(t.entries, oldest)
}

// codeLabel names a series' gRPC status for the evidence: "UNAVAILABLE", with Envoy's
// response flags when there are any ("UNAVAILABLE UH").
func codeLabel(m model.Metric) string {
	name := string(m["grpc_response_status"])
	if n, err := strconv.Atoi(name); err == nil {
		name = codeName(codes.Code(n))
	}
	if name == "" {
		name = "HTTP " + string(m["response_code"])
	}
	if f := string(m["response_flags"]); f != "" && f != "-" {
		name += " " + f
	}
	return name
}

// failed reports whether a series counts failed calls: a gRPC status other than OK, or
// no gRPC status and an HTTP code of 500 or more (the proxy answered for the backend).
func failed(m model.Metric) bool {
	if st := string(m["grpc_response_status"]); st != "" {
		return st != "0"
	}
	code, _ := strconv.Atoi(string(m["response_code"]))
	return code >= 500 || code == 0
}

// add counts n calls of series m into c.
func add(c *rollout.SubsetCounts, m model.Metric, n int64) {
	if n <= 0 {
		return
	}
	c.Requests += n
	if !failed(m) {
		return
	}
	c.Errors += n
	if c.Codes == nil {
		c.Codes = map[string]int64{}
	}
	c.Codes[codeLabel(m)] += n
}

// dominant returns the failing code with the most calls in c, and its count.
func dominant(c rollout.SubsetCounts) (string, int64) {
	names := make([]string, 0, len(c.Codes))
	for n := range c.Codes {
		names = append(names, n)
	}
	sort.Strings(names)
	best, most := "", int64(0)
	for _, n := range names {
		if c.Codes[n] > most {
			best, most = n, c.Codes[n]
		}
	}
	return best, most
}
