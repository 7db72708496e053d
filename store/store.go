// Package store keeps canaryd's history in a bbolt file: the current State of each rollout
// and an append-only history of its Events. bbolt is history and index; Git and the cluster
// are the truth, and an empty store can be refilled from Git.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/canarydio/canaryd/rollout"
)

// SchemaVersion is the layout this package writes. Open refuses a file with another one.
const SchemaVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketStates  = []byte("states")
	bucketHistory = []byte("history")
	keySchema     = []byte("schema")
)

// ErrLocked is returned by Open when another process holds the file.
var ErrLocked = errors.New("store is locked by another process")

// Options tunes Open.
type Options struct {
	// LockTimeout is how long Open waits for another process to release the file (default 1s).
	LockTimeout time.Duration
	// SkipCheck skips the consistency check on open (benchmarks only).
	SkipCheck bool
	// NoSync skips fsync on commit (benchmarks only: a crash can lose history).
	NoSync bool
}

// maxBatchDelay is how long a Save waits for others to share its transaction. It is
// short beside an fsync, so a lone Save costs little more than before.
const maxBatchDelay = 2 * time.Millisecond

// DB is an open store. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
	// views remembers, by rollout, the state StateView last decoded and the bytes it
	// decoded it from.
	viewsMu sync.Mutex
	views   map[string]viewedState
}

type viewedState struct {
	data []byte
	st   rollout.State
}

// Open opens or creates the store at path. It fails at once with ErrLocked, naming the file,
// when another canaryd holds it; it checks the file's consistency and its schema version.
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	b, err := openBolt(path, &bolt.Options{Timeout: opts.LockTimeout, NoSync: opts.NoSync})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (is another canaryd running with this data dir?)", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	b.MaxBatchDelay = maxBatchDelay
	db := &DB{bolt: b, path: path}
	if err := guard(func() error { return db.init(!opts.SkipCheck) }); err != nil {
		b.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

// openBolt opens the file; bbolt panics on some corrupt files, which must be an error here.
func openBolt(path string, opts *bolt.Options) (b *bolt.DB, err error) {
	err = guard(func() error {
		b, err = bolt.Open(path, 0o600, opts)
		return err
	})
	return b, err
}

// guard turns a panic of bbolt's on a corrupt file into an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("file is corrupt: %v (restore a backup, or delete it to rebuild from Git)", r)
		}
	}()
	return f()
}

func (db *DB) init(check bool) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if check {
			var first error
			for err := range tx.Check() { // drain: the checker stops only when done
				if first == nil {
					first = err
				}
			}
			if first != nil {
				return fmt.Errorf("file is inconsistent: %w (restore a backup, or delete it to rebuild from Git)", first)
			}
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keySchema); {
		case v == nil:
			if err := meta.Put(keySchema, u64(SchemaVersion)); err != nil {
				return err
			}
		case len(v) != 8 || binary.BigEndian.Uint64(v) != SchemaVersion:
			return fmt.Errorf("schema version %x, this canaryd reads %d", v, SchemaVersion)
		}
		if _, err := tx.CreateBucketIfNotExists(bucketStates); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bucketHistory)
		return err
	})
}

// Path returns the file's path.
func (db *DB) Path() string { return db.path }

// Close closes the file.
func (db *DB) Close() error { return db.bolt.Close() }

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// Save stores st as the rollout's current state and appends evs to its history, all in one
// durable transaction: either all of it is there after a crash or none of it. Save assigns
// each event its Seq and rollout name. It returns once the transaction is on disk.
// Concurrent Saves (many rollouts' workers on one tick) share one transaction and one
// fsync (bbolt's Batch, gathering for at most MaxBatchDelay); a Save whose part fails is
// retried on its own, so one rollout's error never fails another's.
func (db *DB) Save(st rollout.State, evs ...rollout.Event) error {
	if st.Rollout == "" {
		return errors.New("save: state has no rollout name")
	}
	// The function may run more than once (again on its own after a failed batch): it
	// changes nothing outside its transaction.
	return db.bolt.Batch(func(tx *bolt.Tx) error {
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketStates).Put([]byte(st.Rollout), data); err != nil {
			return err
		}
		return appendEvents(tx, st.Rollout, evs)
	})
}

// Append appends events to a rollout's history without touching its state. Like Save, it
// returns once durable and shares a transaction with concurrent writes.
func (db *DB) Append(name string, evs ...rollout.Event) error {
	return db.bolt.Batch(func(tx *bolt.Tx) error { return appendEvents(tx, name, evs) })
}

func appendEvents(tx *bolt.Tx, name string, evs []rollout.Event) error {
	if len(evs) == 0 {
		return nil
	}
	h, err := tx.Bucket(bucketHistory).CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return err
	}
	h.FillPercent = 1.0      // keys only ever grow: pack pages full
	var runs map[string]*run // nil until the history's tail is read
	for i := range evs {
		ev := evs[i]
		ev.Rollout = name
		if ev.Kind != rollout.EventVerdict || ev.Verdict == nil {
			runs = map[string]*run{} // any other event ends every run of verdicts
		} else {
			if runs == nil {
				if runs, err = tailRuns(h); err != nil {
					return err
				}
			}
			if r := runs[ev.Verdict.Gate]; r != nil && sameVerdict(r.ev, ev) {
				r.ev.Count = max(r.ev.Count, 1) + 1
				r.ev.Until, r.ev.Verdict, r.dirty = ev.Time, ev.Verdict, true
				continue
			}
		}
		if ev.Seq, err = h.NextSequence(); err != nil {
			return err
		}
		if err := putEvent(h, ev); err != nil {
			return err
		}
		if ev.Kind == rollout.EventVerdict && ev.Verdict != nil {
			runs[ev.Verdict.Gate] = &run{ev: ev}
		}
	}
	for _, r := range runs {
		if r.dirty {
			if err := putEvent(h, r.ev); err != nil {
				return err
			}
		}
	}
	return nil
}

func putEvent(h *bolt.Bucket, ev rollout.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return h.Put(u64(ev.Seq), data)
}

// State returns the stored state of a rollout; ok is false when there is none.
func (db *DB) State(name string) (st rollout.State, ok bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketStates).Get([]byte(name))
		if data == nil {
			return nil
		}
		ok = true
		return decode(data, &st)
	})
	if err != nil {
		return rollout.State{}, false, fmt.Errorf("state of %q: %w", name, err)
	}
	return st, ok, nil
}

// StateView is State for callers that only read what they get (status pages, metrics): the
// state may be shared with other callers, maps and pointers included, and must not be
// changed. A state whose stored bytes have not changed since the last call is not decoded
// again, so that a list of thousands of rollouts, read while they move, decodes only those
// that moved.
func (db *DB) StateView(name string) (st rollout.State, ok bool, err error) {
	v := db.StateViews([]string{name})[0]
	return v.State, v.Found, v.Err
}

// Viewed is one rollout's answer of StateViews.
type Viewed struct {
	State rollout.State
	Found bool  // the rollout has a saved state
	Err   error // the state could not be read or decoded
}

// StateViews is StateView for many rollouts in one read of the store, so that a list of
// thousands costs one transaction, not one per rollout; the i-th answer is names[i]'s.
func (db *DB) StateViews(names []string) []Viewed {
	out := make([]Viewed, len(names))
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketStates)
		for i, name := range names {
			if data := b.Get([]byte(name)); data != nil {
				out[i].Found = true
				out[i].State, out[i].Err = db.viewOf(name, data)
			}
		}
		return nil
	})
	for i, name := range names {
		if err != nil {
			out[i] = Viewed{Err: err}
		}
		if out[i].Err != nil {
			out[i] = Viewed{Err: fmt.Errorf("state of %q: %w", name, out[i].Err)}
		}
	}
	return out
}

// viewOf returns the state data decodes to, decoding it only when name's stored bytes
// changed since the last view. data lives only as long as its transaction.
func (db *DB) viewOf(name string, data []byte) (rollout.State, error) {
	db.viewsMu.Lock()
	v, seen := db.views[name]
	db.viewsMu.Unlock()
	if seen && bytes.Equal(v.data, data) {
		return v.st, nil
	}
	var st rollout.State
	if err := decode(data, &st); err != nil {
		return rollout.State{}, err
	}
	db.viewsMu.Lock()
	if db.views == nil {
		db.views = map[string]viewedState{}
	}
	db.views[name] = viewedState{data: bytes.Clone(data), st: st}
	db.viewsMu.Unlock()
	return st, nil
}

// States returns the stored state of every rollout, by name.
func (db *DB) States() ([]rollout.State, error) {
	var sts []rollout.State
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStates).ForEach(func(k, v []byte) error {
			var st rollout.State
			if err := decode(v, &st); err != nil {
				return fmt.Errorf("state of %q: %w", k, err)
			}
			sts = append(sts, st)
			return nil
		})
	})
	return sts, err
}

// Delete removes a rollout's state, keeping its history.
func (db *DB) Delete(name string) error {
	db.viewsMu.Lock()
	delete(db.views, name)
	db.viewsMu.Unlock()
	return db.bolt.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketStates).Delete([]byte(name)) })
}

// History returns up to limit events of a rollout, newest first, with Seq below before
// (0: from the newest). The next page starts before the last event's Seq.
func (db *DB) History(name string, before uint64, limit int) ([]rollout.Event, error) {
	var evs []rollout.Event
	err := db.bolt.View(func(tx *bolt.Tx) error {
		h := tx.Bucket(bucketHistory).Bucket([]byte(name))
		if h == nil {
			return nil
		}
		c := h.Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			k, v = c.Seek(u64(before))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && len(evs) < limit; k, v = c.Prev() {
			var ev rollout.Event
			if err := decode(v, &ev); err != nil {
				return fmt.Errorf("event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			evs = append(evs, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history of %q: %w", name, err)
	}
	return evs, nil
}

// Len returns how many events a rollout's history holds.
func (db *DB) Len(name string) (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if h := tx.Bucket(bucketHistory).Bucket([]byte(name)); h != nil {
			n = h.Stats().KeyN
		}
		return nil
	})
	return n, err
}

// Backup writes a consistent copy of the whole file to w while the store stays in use.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupFile writes a backup to path atomically (a temp file renamed into place).
func (db *DB) BackupFile(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".backup-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := db.Backup(f); err != nil {
		f.Close()
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// decode reads a stored record strictly: a record this version cannot read is an error,
// not a zero value.
func decode(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("corrupt record: %w", err)
	}
	return nil
}
