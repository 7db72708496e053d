package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/canarydio/canaryd/rollout"
)

// openTest opens a store in a temp dir and checks the file's consistency when the test ends.
func openTest(t testing.TB) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "canaryd.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
		again, err := Open(path, Options{}) // Open checks consistency
		if err != nil {
			t.Errorf("reopen at cleanup: %v", err)
			return
		}
		again.Close()
	})
	return db
}

func event(i int) rollout.Event {
	return rollout.Event{Time: time.Unix(int64(i), 0).UTC(), Kind: rollout.EventVerdict, Run: 1, Step: 1,
		Weights: rollout.CanaryAt(40), Phase: rollout.Progressing,
		Verdict: &rollout.Verdict{Gate: "grpc-success-rate", Result: rollout.Pass, Evidence: []rollout.Evidence{{Query: "sum(x)", Value: 0.999, Threshold: ">= 0.99", Samples: 60}}},
		Message: fmt.Sprint(i)}
}

func TestSaveStateAndHistory(t *testing.T) {
	db := openTest(t)
	st := rollout.State{Rollout: "a", Phase: rollout.Progressing, Run: 2, Step: 1, Weights: rollout.CanaryAt(40),
		Pending: &rollout.Move{Kind: rollout.Forward, Step: 2, Weights: rollout.CanaryAt(100)}}
	var evs []rollout.Event
	for i := 1; i <= 25; i++ {
		evs = append(evs, event(i))
	}
	if err := db.Save(st, evs...); err != nil {
		t.Fatal(err)
	}
	if err := db.Save(rollout.State{Rollout: "b", Phase: rollout.Idle}, event(100)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.State("a")
	if err != nil || !ok {
		t.Fatalf("State: %v %v", ok, err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if _, ok, _ := db.State("nope"); ok {
		t.Error("a missing rollout has a state")
	}
	page1, err := db.History("a", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page1) != 10 || page1[0].Seq != 25 || page1[9].Seq != 16 || page1[0].Message != "25" || page1[0].Rollout != "a" {
		t.Fatalf("newest page: %d events, first %+v", len(page1), page1[0])
	}
	page3, _ := db.History("a", 6, 10)
	if len(page3) != 5 || page3[0].Seq != 5 || page3[4].Seq != 1 {
		t.Fatalf("last page: %+v", page3)
	}
	if evs, _ := db.History("a", 1, 10); len(evs) != 0 {
		t.Errorf("before the first event: %d events", len(evs))
	}
	if evs, _ := db.History("a", 1000, 3); len(evs) != 3 || evs[0].Seq != 25 {
		t.Errorf("before beyond the newest: %+v", evs)
	}
	if n, _ := db.Len("a"); n != 25 {
		t.Errorf("Len = %d, want 25", n)
	}
	sts, err := db.States()
	if err != nil || len(sts) != 2 || sts[0].Rollout != "a" || sts[1].Rollout != "b" {
		t.Errorf("States = %+v, %v", sts, err)
	}
}

func TestHistorySurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "canaryd.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Save(rollout.State{Rollout: "a"}, event(1), event(2)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Append("a", event(3)); err != nil {
		t.Fatal(err)
	}
	evs, _ := db.History("a", 0, 10)
	if len(evs) != 3 || evs[0].Seq != 3 || evs[0].Message != "3" {
		t.Fatalf("after reopen: %+v", evs)
	}
}

func TestSchemaVersionIsChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "canaryd.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion+1)) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	_, err = Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "schema version") || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want a schema version error naming the file", err)
	}
}

func TestCorruptFileIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "canaryd.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []rollout.Event
	for i := 0; i < 2000; i++ {
		evs = append(evs, event(i))
	}
	if err := db.Save(rollout.State{Rollout: "a"}, evs...); err != nil {
		t.Fatal(err)
	}
	db.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Smash the page headers of every data page (meta pages 0 and 1 stay intact).
	for off := 2 * os.Getpagesize(); off+16 < len(data); off += os.Getpagesize() {
		copy(data[off:off+16], bytes.Repeat([]byte{0xA5}, 16))
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	if err == nil {
		t.Fatal("a corrupt file opened without error")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestBackupWhileWriting(t *testing.T) {
	db := openTest(t)
	for i := 0; i < 100; i++ {
		if err := db.Save(rollout.State{Rollout: "a"}, event(i)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // writes go on during the backup
		defer wg.Done()
		for i := 100; i < 300; i++ {
			if err := db.Append("a", event(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := db.BackupFile(path); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	backup, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	defer backup.Close()
	n, _ := backup.Len("a")
	if n < 100 || n > 300 {
		t.Fatalf("backup holds %d events, want a consistent snapshot of 100..300", n)
	}
	evs, _ := backup.History("a", 0, 1)
	if evs[0].Seq != uint64(n) {
		t.Errorf("backup's newest seq %d, but it holds %d events: not a snapshot", evs[0].Seq, n)
	}
}

// TestSecondProcessIsRefused opens the store from a child process that holds it, then
// expects this process's Open to fail with ErrLocked naming the file.
func TestSecondProcessIsRefused(t *testing.T) {
	if os.Getenv("CANARYD_HOLD_STORE") != "" {
		return // only as the child below
	}
	path := filepath.Join(t.TempDir(), "canaryd.db")
	child := exec.Command(os.Args[0], "-test.run=^TestHoldStore$")
	child.Env = append(os.Environ(), "CANARYD_HOLD_STORE="+path)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // the child exits when its stdin closes
		child.Wait()
	}()
	buf := make([]byte, 5)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "held\n"[:5] {
		t.Fatalf("child did not take the store: %q %v", buf, err)
	}
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the file: %v", err)
	}
}

// TestHoldStore is the child of TestSecondProcessIsRefused.
func TestHoldStore(t *testing.T) {
	path := os.Getenv("CANARYD_HOLD_STORE")
	if path == "" {
		t.Skip("only runs as the child of TestSecondProcessIsRefused")
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	os.Stdout.WriteString("held\n")
	var b [1]byte
	os.Stdin.Read(b[:]) // until the parent closes our stdin
}

func FuzzDecodeRecord(f *testing.F) {
	ev, _ := json.Marshal(event(1))
	st, _ := json.Marshal(rollout.State{Rollout: "a", Pending: &rollout.Move{Kind: rollout.Rollback}})
	f.Add(ev)
	f.Add(st)
	f.Fuzz(func(t *testing.T, data []byte) {
		var e rollout.Event
		if err := decode(data, &e); err == nil {
			again, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("a decoded event does not encode: %v", err)
			}
			var e2 rollout.Event
			if err := decode(again, &e2); err != nil {
				t.Fatalf("a re-encoded event does not decode: %v", err)
			}
		}
		var s rollout.State
		_ = decode(data, &s)
	})
}

// TestConcurrentSavesShareTransactions saves 200 rollouts' states from 200 goroutines at
// once (a tick of 200 workers): every state and event is there after a reopen, and the
// saves took fewer write transactions than there were saves.
func TestConcurrentSavesShareTransactions(t *testing.T) {
	const n = 200
	path := filepath.Join(t.TempDir(), "canaryd.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := txID(t, db)
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		go func() {
			<-start
			errs <- db.Save(rollout.State{Rollout: fmt.Sprintf("ro-%d", i), Run: i + 1}, event(i))
		}()
	}
	close(start)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	txs := txID(t, db) - before
	t.Logf("%d saves, %d write transactions", n, txs)
	db.Close()
	if txs >= n {
		t.Errorf("%d saves took %d write transactions, want fewer", n, txs)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range n {
		name := fmt.Sprintf("ro-%d", i)
		st, ok, err := db.State(name)
		if err != nil || !ok || st.Run != i+1 {
			t.Fatalf("state of %s after reopen: %+v, %v, %v", name, st, ok, err)
		}
		evs, err := db.History(name, 0, 10)
		if err != nil || len(evs) != 1 || evs[0].Message != fmt.Sprint(i) {
			t.Fatalf("history of %s after reopen: %+v, %v", name, evs, err)
		}
	}
}

// txID returns the id of the last committed write transaction.
func txID(t *testing.T, db *DB) int {
	t.Helper()
	var id int
	if err := db.bolt.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestStateViewFollowsEverySave reads a state through StateView after each Save of it,
// including Saves that shared a batch transaction, and after a Delete: it always matches
// what State decodes, never a state remembered from before, and so does StateViews.
func TestStateViewFollowsEverySave(t *testing.T) {
	db := openTest(t)
	for i := range 5 {
		var wg sync.WaitGroup
		for _, name := range []string{"a", "b", "c"} {
			wg.Go(func() {
				st := rollout.State{Rollout: name, Phase: rollout.Progressing, Run: i, Step: i % 3, Weights: rollout.CanaryAt(20 * i),
					Gates: map[string]rollout.GateState{"g": {Failures: i}}}
				if err := db.Save(st); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, name := range []string{"a", "b", "c"} {
			want, _, _ := db.State(name)
			got, ok, err := db.StateView(name)
			if err != nil || !ok || want.Run != i {
				t.Fatalf("round %d: StateView(%s) = %v, %v; State run %d", i, name, ok, err, want.Run)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("round %d: StateView(%s) (-State +StateView):\n%s", i, name, diff)
			}
			if again, _, _ := db.StateView(name); again.Run != i || again.Gates["g"].Failures != i {
				t.Fatalf("round %d: StateView(%s) again = %+v", i, name, again)
			}
		}
		all := db.StateViews([]string{"c", "missing", "a"})
		for j, name := range []string{"c", "missing", "a"} {
			want, found, _ := db.State(name)
			if v := all[j]; v.Err != nil || v.Found != found || !cmp.Equal(v.State, want) {
				t.Fatalf("round %d: StateViews answer %d for %s = %+v, State %v %+v", i, j, name, v, found, want)
			}
		}
	}
	if err := db.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.StateView("b"); ok || err != nil {
		t.Errorf("StateView of a deleted state: %v, %v", ok, err)
	}
}
