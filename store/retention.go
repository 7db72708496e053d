package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/canarydio/canaryd/rollout"
)

// Retention bounds each rollout's history by age and by count. Verdicts (one per gate per
// check) are kept for less long than the rest: steps, phases, operator actions.
type Retention struct {
	// VerdictAge drops verdict events older than it; 0 means DefaultVerdictAge.
	VerdictAge time.Duration
	// EventAge drops every other event older than it; 0 means DefaultEventAge.
	EventAge time.Duration
	// MaxVerdicts keeps at most this many verdict events per rollout, the newest; 0 means
	// DefaultMaxVerdicts. Between passes a history may grow a tenth over the smaller count.
	MaxVerdicts int
	// MaxEvents keeps at most this many other events per rollout, the newest; 0 means
	// DefaultMaxEvents.
	MaxEvents int
}

// The default retention: a week of verdicts and a year of everything else, and counts that
// bound a rollout checked often: 20,000 verdict events is a week of one gate checked every
// 30 s (identical verdicts fold into one event, so a steady gate costs far less).
const (
	DefaultVerdictAge  = 7 * 24 * time.Hour
	DefaultEventAge    = 365 * 24 * time.Hour
	DefaultMaxVerdicts = 20_000
	DefaultMaxEvents   = 20_000
)

// pruneBatch is how many events one write transaction deletes, so that pruning never holds
// the writer for long and the controller's saves go between batches.
const pruneBatch = 1000

func (r Retention) withDefaults() Retention {
	if r.VerdictAge <= 0 {
		r.VerdictAge = DefaultVerdictAge
	}
	if r.EventAge <= 0 {
		r.EventAge = DefaultEventAge
	}
	if r.MaxVerdicts <= 0 {
		r.MaxVerdicts = DefaultMaxVerdicts
	}
	if r.MaxEvents <= 0 {
		r.MaxEvents = DefaultMaxEvents
	}
	return r
}

// Prune deletes, in every rollout's history, the events r no longer keeps at time now, in
// small write transactions, and returns how many it deleted. States are never touched. An
// event's age counts from its last time (Until, for folded verdicts).
func (db *DB) Prune(now time.Time, r Retention) (int, error) {
	r = r.withDefaults()
	var names [][]byte
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHistory).ForEachBucket(func(k []byte) error {
			names = append(names, append([]byte(nil), k...))
			return nil
		})
	}); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	total := 0
	for _, name := range names {
		keys, err := db.expired(name, now, r)
		if err != nil {
			return total, fmt.Errorf("prune history of %q: %w", name, err)
		}
		for len(keys) > 0 {
			n := min(len(keys), pruneBatch)
			if err := db.deleteKeys(name, keys[:n]); err != nil {
				return total, fmt.Errorf("prune history of %q: %w", name, err)
			}
			total += n
			keys = keys[n:]
		}
	}
	return total, nil
}

// stamp is what retention reads of an event.
type stamp struct {
	Kind  rollout.EventKind `json:"kind"`
	Time  time.Time         `json:"time"`
	Until time.Time         `json:"until"`
}

// expired lists the keys of name's history that r drops at now, reading in one read
// transaction, which blocks no writer. Keys rise with time, so the age pass reads from the
// oldest event only to the first one young enough to keep; the count pass runs only when
// the history holds more events than a count allows.
func (db *DB) expired(name []byte, now time.Time, r Retention) ([][]byte, error) {
	var keys [][]byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		h := tx.Bucket(bucketHistory).Bucket(name)
		if h == nil {
			return nil
		}
		young := now.Add(-min(r.VerdictAge, r.EventAge))
		c := h.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			s, err := readStamp(k, v)
			if err != nil {
				return err
			}
			if s.last().After(young) {
				break
			}
			if now.Sub(s.last()) > s.age(r) {
				keys = append(keys, append([]byte(nil), k...))
			}
		}
		// The count pass reads the whole history, so it waits until the history is a tenth
		// over the smaller count, then trims both counts exactly.
		limit := min(r.MaxVerdicts, r.MaxEvents)
		if h.Stats().KeyN-len(keys) <= limit+limit/10 {
			return nil
		}
		return countPass(h, r, &keys)
	})
	return keys, err
}

// verdictKind marks a verdict's record; inside a JSON string a quote is escaped, so these
// bytes occur only as the event's own kind.
var verdictKind = []byte(`"kind":"verdict"`)

// countPass adds the keys beyond r's counts, newest first, that keys does not hold yet.
func countPass(h *bolt.Bucket, r Retention, keys *[][]byte) error {
	dropped := map[string]bool{}
	for _, k := range *keys {
		dropped[string(k)] = true
	}
	verdicts, others := 0, 0
	c := h.Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		if dropped[string(k)] {
			continue
		}
		over := false
		if bytes.Contains(v, verdictKind) {
			verdicts++
			over = verdicts > r.MaxVerdicts
		} else {
			others++
			over = others > r.MaxEvents
		}
		if over {
			*keys = append(*keys, append([]byte(nil), k...))
		}
	}
	return nil
}

func readStamp(k, v []byte) (stamp, error) {
	var s stamp
	if err := json.Unmarshal(v, &s); err != nil {
		return s, fmt.Errorf("event %x: corrupt record: %w", k, err)
	}
	return s, nil
}

// last is the event's last time: Until for folded verdicts.
func (s stamp) last() time.Time {
	if s.Until.After(s.Time) {
		return s.Until
	}
	return s.Time
}

func (s stamp) age(r Retention) time.Duration {
	if s.Kind == rollout.EventVerdict {
		return r.VerdictAge
	}
	return r.EventAge
}

func (db *DB) deleteKeys(name []byte, keys [][]byte) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		h := tx.Bucket(bucketHistory).Bucket(name)
		if h == nil {
			return nil
		}
		for _, k := range keys {
			if err := h.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// RunRetention prunes the history with r every interval (0: hourly), starting at once,
// until ctx ends; it then returns nil. now gives the time (nil: time.Now). A failed pass is
// logged and retried at the next interval: retention never stops the daemon.
func (db *DB) RunRetention(ctx context.Context, r Retention, interval time.Duration, now func() time.Time, log *slog.Logger) error {
	if interval <= 0 {
		interval = time.Hour
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := db.Prune(now(), r)
		if err != nil {
			log.Warn("prune history", "err", err)
		} else if n > 0 {
			log.Info("history pruned", "events", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
