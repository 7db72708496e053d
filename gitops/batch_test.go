package gitops

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

// layout places n VirtualServices vs-0..vs-n-1 in the repo: all in one manifest, or one
// file each. It returns the files and the manifest of vs-i.
type layout struct {
	name     string
	files    func(n int) map[string]string
	manifest func(i int) string
}

var layouts = []layout{
	{"one-manifest", func(n int) map[string]string { return map[string]string{"deploy/vs.yaml": manyVS(n)} },
		func(int) string { return "deploy/vs.yaml" }},
	{"file-per-rollout", func(n int) map[string]string {
		files := map[string]string{}
		for i := range n {
			files[fmt.Sprintf("deploy/vs-%d.yaml", i)] = strings.ReplaceAll(manyVS(1), "-0", fmt.Sprintf("-%d", i))
		}
		return files
	}, func(i int) string { return fmt.Sprintf("deploy/vs-%d.yaml", i) }},
}

// nested is a layout for benchmarks: one file each, a hundred to a folder.
var nested = layout{"nested-folders", func(n int) map[string]string {
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("deploy/g%03d/vs-%d.yaml", i/100, i)] = strings.ReplaceAll(manyVS(1), "-0", fmt.Sprintf("-%d", i))
	}
	return files
}, func(i int) string { return fmt.Sprintf("deploy/g%03d/vs-%d.yaml", i/100, i) }}

// docFor is ro-i driving vs-i in file.
func docFor(t testing.TB, i int, file string) *rollout.Document {
	return parseDoc(t, strings.Replace(specFor(i), "deploy/vs.yaml", file, 1))
}

// TestBatchOfManyRollouts has 200 rollouts in one repo take a step at once (200 concurrent
// SetWeights calls, as 200 workers on one tick do), one of them after a person changed its
// weights. The git CLI is the oracle: the other 199 steps are on main as one commit per
// rollout, with parseable trailers and only that rollout's weights changed, in a handful
// of pushes (the remote's reflog); the one a person changed is refused as an external
// change and nothing is written for it.
func TestBatchOfManyRollouts(t *testing.T) {
	needGit(t)
	const n = 200
	for _, lay := range layouts {
		t.Run(lay.name, func(t *testing.T) {
			rem := newRemote(t, lay.files(n))
			work := personClone(t, rem.url)
			personEdit(t, work, lay.manifest(0), "vs-0", 70, 30)
			r := openRepo(t, rem.url, nil)
			seed := gitRun(t, rem.dir, "rev-parse", "main")
			pushesBefore := reflogLen(t, rem.dir)

			shas := make([]string, n)
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					doc := docFor(t, i, lay.manifest(i))
					c := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3, Weights: doc.Spec.WeightsAt(0),
						Base: rollout.CanaryAt(0)}
					<-start
					shas[i], errs[i] = r.SetWeights(ctxT(t), doc, c)
				})
			}
			close(start)
			wg.Wait()

			var ext *rollout.ExternalChangeError
			if !errors.As(errs[0], &ext) || ext.Change.Weights != rollout.CanaryAt(30) {
				t.Errorf("ro-0 after a person's edit: %q, %v; want an external change at 30", shas[0], errs[0])
			}
			for i := 1; i < n; i++ {
				if errs[i] != nil {
					t.Fatalf("ro-%d: %v", i, errs[i])
				}
			}
			pushes := reflogLen(t, rem.dir) - pushesBefore
			t.Logf("%d rollouts: %d pushes", n, pushes)
			if pushes < 1 || pushes > 5 {
				t.Errorf("%d steps took %d pushes, want 1..5", n-1, pushes)
			}
			checkBatchCommits(t, rem.dir, seed, shas[1:], lay)
			// The cache took the pushed pack with an index canaryd wrote: git checks both.
			gitRun(t, r.cachePath(), "fsck", "--strict", "--no-dangling")
			gitRun(t, r.cachePath(), "cat-file", "-e", shas[n-1])
		})
	}
}

// checkBatchCommits checks with the git CLI that the commits since seed are exactly shas,
// each with its rollout's trailers and a change of only its rollout's weights.
func checkBatchCommits(t *testing.T, dir, seed string, shas []string, lay layout) {
	t.Helper()
	gitRun(t, dir, "fsck", "--strict", "--no-dangling") // every object the pushes carried is whole
	got := strings.Fields(gitRun(t, dir, "rev-list", "--first-parent", seed+"..main"))
	if len(got) != len(shas) {
		t.Fatalf("main has %d new commits, want %d", len(got), len(shas))
	}
	want := map[string]bool{}
	for _, s := range shas {
		want[s] = true
	}
	for _, sha := range got {
		if !want[sha] {
			t.Errorf("commit %s on main is not one SetWeights returned", sha)
			continue
		}
		tr := parseTrailers(t, dir, sha)
		name := tr[TrailerRollout]
		var i int
		if _, err := fmt.Sscanf(name, "ro-%d", &i); err != nil {
			t.Errorf("commit %s: trailers %v name no rollout", sha, tr)
			continue
		}
		if tr[TrailerWeights] != "v1=80,v2=20" || tr[TrailerStep] != "1/3" || tr[TrailerRun] != "1" {
			t.Errorf("commit %s of %s: trailers %v", sha, name, tr)
		}
		file := lay.manifest(i)
		if files := gitRun(t, dir, "diff-tree", "--no-commit-id", "--name-only", "-r", sha); files != file {
			t.Errorf("commit %s of %s changed %q, want %s", sha, name, files, file)
		}
		ref := VSRef{Namespace: "default", Name: fmt.Sprintf("vs-%d", i), Stable: "v1", Canary: "v2"}
		before, _ := ReadWeights([]byte(gitRun(t, dir, "show", sha+"^:"+file)), ref)
		after, err := ReadWeights([]byte(gitRun(t, dir, "show", sha+":"+file)), ref)
		if err != nil || before != rollout.CanaryAt(0) || after != rollout.CanaryAt(20) {
			t.Errorf("commit %s of %s moved vs-%d from %v to %v (%v), want 0 to 20", sha, name, i, before, after, err)
		}
	}
}

// parseTrailers reads a commit's trailers with git interpret-trailers --parse, as one map
// (a commit with one rollout's trailers; see gitSections for several).
func parseTrailers(t *testing.T, dir, sha string) map[string]string {
	t.Helper()
	tr := map[string]string{}
	for _, sec := range gitSections(t, dir, sha) {
		maps.Copy(tr, sec)
	}
	return tr
}

// reflogLen counts the updates of main in the remote's reflog: one per push.
func reflogLen(t testing.TB, dir string) int {
	t.Helper()
	return len(strings.Fields(gitRun(t, dir, "reflog", "show", "--format=%H", "refs/heads/main")))
}

// personEdit has a person set vs's weights in file and push.
func personEdit(t *testing.T, work, file, vs string, stable, canary int) {
	t.Helper()
	p := filepath.Join(work, file)
	data := gitRun(t, work, "show", "HEAD:"+file) + "\n"
	ref := VSRef{Namespace: "default", Name: vs, Stable: "v1", Canary: "v2"}
	out, err := SetWeights([]byte(data), ref, rollout.Weights{Stable: stable, Canary: canary})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Dir(p), filepath.Base(p), string(out))
	gitRun(t, work, "commit", "-q", "-am", "hand edit of "+vs)
	gitRun(t, work, "push", "-q", "origin", "HEAD:main")
}

// TestBatchReplaysOnRejectedPush has a person push between the batch's chain and its push:
// the remote refuses it, and every edit of the batch is replayed on the new head (none
// forced, the person's commit kept), in one more push.
func TestBatchReplaysOnRejectedPush(t *testing.T) {
	needGit(t)
	const n = 20
	rem := newRemote(t, layouts[0].files(n))
	work := personClone(t, rem.url)
	r := openRepo(t, rem.url, nil)
	var once sync.Once
	r.beforePush = func() {
		once.Do(func() {
			writeFile(t, work, "NOTES.md", "a person's note\n")
			gitRun(t, work, "add", "-A")
			gitRun(t, work, "commit", "-q", "-m", "a person's note")
			gitRun(t, work, "push", "-q", "origin", "HEAD:main")
		})
	}
	before := reflogLen(t, rem.dir)
	shas := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			doc := docFor(t, i, "deploy/vs.yaml")
			c := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3, Weights: doc.Spec.WeightsAt(0),
				Base: rollout.CanaryAt(0)}
			sha, err := r.SetWeights(ctxT(t), doc, c)
			if err != nil {
				t.Errorf("ro-%d: %v", i, err)
			}
			shas[i] = sha
		})
	}
	wg.Wait()
	note := gitRun(t, work, "rev-parse", "HEAD")
	if _, err := gitTry(rem.dir, "merge-base", "--is-ancestor", note, "main"); err != nil {
		t.Fatalf("the person's commit %s was lost", note)
	}
	got := strings.Fields(gitRun(t, rem.dir, "rev-list", "--first-parent", note+"..main"))
	if len(got) != n {
		t.Errorf("%d commits after the person's, want %d", len(got), n)
	}
	if pushes := reflogLen(t, rem.dir) - before; pushes > 4 {
		t.Errorf("%d pushes (the person's and canaryd's), want a handful", pushes)
	}
	checkBatchCommits(t, rem.dir, note, shas, layouts[0])
}

// TestBatchNeverHoldsBackARollback queues a forward step behind a batch window of an hour,
// then a rollback of another rollout: the rollback is written at once, and takes the
// waiting step along in its push.
func TestBatchNeverHoldsBackARollback(t *testing.T) {
	needGit(t)
	rem := newRemote(t, layouts[0].files(2))
	r := openRepo(t, rem.url, func(c *Config) { c.BatchWindow = time.Hour })
	before := reflogLen(t, rem.dir)
	fwd, back := docFor(t, 0, "deploy/vs.yaml"), docFor(t, 1, "deploy/vs.yaml")
	queued := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		close(queued)
		_, err := r.SetWeights(ctxT(t), fwd, rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3,
			Weights: rollout.CanaryAt(20), Base: rollout.CanaryAt(0)})
		done <- err
	}()
	<-queued
	waitQueued(t, r, 1)
	sha, err := r.SetWeights(ctxT(t), back, rollout.Commit{Kind: rollout.Rollback, Run: 1, Steps: 3,
		Weights: rollout.CanaryAt(0), Base: rollout.CanaryAt(0), Reason: "probe failed"})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the forward step queued before the rollback: %v", err)
	}
	if pushes := reflogLen(t, rem.dir) - before; pushes != 1 {
		t.Errorf("%d pushes, want the rollback's one", pushes)
	}
	if tr := parseTrailers(t, rem.dir, sha); tr[TrailerKind] != "rollback" || tr[TrailerRollout] != "ro-1" {
		t.Errorf("rollback commit %s trailers %v", sha, tr)
	}
}

// waitQueued waits until n writes are queued: the flusher takes none before its window.
func waitQueued(t *testing.T, r *Repo, n int) {
	t.Helper()
	for ctx := ctxT(t); ctx.Err() == nil; runtime.Gosched() {
		r.qmu.Lock()
		got := len(r.queue)
		r.qmu.Unlock()
		if got >= n {
			return
		}
	}
	t.Fatalf("fewer than %d writes queued", n)
}

// BenchmarkBatch1000 has 1,000 rollouts ($CANARYD_BATCH_N) take a step at once, in each
// layout (one manifest, a file each in one folder, a file each a hundred to a folder), and
// reports how long until every SetWeights returned, and the pushes it took.
func BenchmarkBatch1000(b *testing.B) {
	needGit(b)
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("CANARYD_BATCH_N")); err == nil && v > 0 {
		n = v // e.g. 10000
	}
	for _, lay := range append(layouts, nested) {
		b.Run(lay.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				rem := newRemote(b, lay.files(n))
				r := openRepo(b, rem.url, nil)
				before := reflogLen(b, rem.dir)
				docs := make([]*rollout.Document, n)
				for i := range n {
					docs[i] = docFor(b, i, lay.manifest(i))
				}
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() {
						c := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3, Weights: rollout.CanaryAt(20), Base: rollout.CanaryAt(0)}
						if _, err := r.SetWeights(ctxT(b), docs[i], c); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				b.ReportMetric(time.Since(start).Seconds(), "all-s")
				b.StopTimer()
				b.ReportMetric(float64(reflogLen(b, rem.dir)-before), "pushes")
			}
		})
	}
}

// BenchmarkCompactAfterBatches has 1,000 rollouts ($CANARYD_BATCH_N) take 30 steps at once,
// 30 batches, each installed in the cache as its own pack, and then a person push one
// commit: it reports how long the sync that fetches it takes, compacting the cache's packs
// included, and how many packs are left.
func BenchmarkCompactAfterBatches(b *testing.B) {
	needGit(b)
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("CANARYD_BATCH_N")); err == nil && v > 0 {
		n = v
	}
	const batches = 30
	lay := layouts[1] // a file each
	for range b.N {
		b.StopTimer()
		rem := newRemote(b, lay.files(n))
		r := openRepo(b, rem.url, nil)
		docs := make([]*rollout.Document, n)
		for i := range n {
			docs[i] = docFor(b, i, lay.manifest(i))
		}
		own := make([]string, n)
		for k := range batches {
			from, to := rollout.CanaryAt(k%2*20), rollout.CanaryAt((k+1)%2*20)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					c := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3, Weights: to, Base: from, BaseOwn: own[i]}
					sha, err := r.SetWeights(ctxT(b), docs[i], c)
					if err != nil {
						b.Error(err)
					}
					own[i] = sha
				})
			}
			wg.Wait()
		}
		work := personClone(b, rem.url)
		writeFile(b, work, "NOTES.md", "a person's commit\n")
		gitRun(b, work, "add", "NOTES.md")
		gitRun(b, work, "commit", "-q", "-m", "notes")
		gitRun(b, work, "push", "-q", "origin", "HEAD:main")
		b.StartTimer()
		start := time.Now()
		if _, err := r.Sync(ctxT(b)); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "sync-s")
		b.StopTimer()
		packs, _ := filepath.Glob(filepath.Join(r.cachePath(), "objects", "pack", "*.pack"))
		b.ReportMetric(float64(len(packs)), "packs")
	}
}

// TestBatchOfIdenticalFiles has two rollouts in one batch whose manifests are two files of
// the same bytes (one object of the cache), each rollout driving another VirtualService of
// them: the git CLI shows each file with its own rollout's change and nothing of the other's.
func TestBatchOfIdenticalFiles(t *testing.T) {
	needGit(t)
	same := manyVS(2) // vs-1 at 40 %, so that it can roll back
	i := strings.LastIndex(same, "weight: 100")
	same = same[:i] + "weight: 60" + same[i+len("weight: 100"):]
	i = strings.LastIndex(same, "weight: 0\n")
	same = same[:i] + "weight: 40\n" + same[i+len("weight: 0\n"):]
	rem := newRemote(t, map[string]string{"a/vs.yaml": same, "b/vs.yaml": same})
	r := openRepo(t, rem.url, func(c *Config) { c.BatchWindow = time.Hour })
	if _, err := r.RouteWeights(docFor(t, 0, "a/vs.yaml"), 1<<20); err != nil { // the one blob of both files parsed and cached
		t.Fatal(err)
	}
	before := reflogLen(t, rem.dir)
	done := make(chan error, 1)
	go func() {
		_, err := r.SetWeights(ctxT(t), docFor(t, 0, "a/vs.yaml"), rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3,
			Weights: rollout.CanaryAt(20), Base: rollout.CanaryAt(0)})
		done <- err
	}()
	waitQueued(t, r, 1)
	if _, err := r.SetWeights(ctxT(t), docFor(t, 1, "b/vs.yaml"), rollout.Commit{Kind: rollout.Rollback, Run: 1, Steps: 3,
		Weights: rollout.CanaryAt(0), Base: rollout.CanaryAt(40), Reason: "probe failed"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pushes := reflogLen(t, rem.dir) - before; pushes != 1 {
		t.Errorf("%d pushes, want one batch", pushes)
	}
	wantA := strings.Replace(strings.Replace(same, "weight: 100", "weight: 80", 1), "weight: 0\n", "weight: 20\n", 1)
	wantB := strings.Replace(strings.Replace(same, "weight: 60", "weight: 100", 1), "weight: 40", "weight: 0", 1)
	for file, want := range map[string]string{"a/vs.yaml": wantA, "b/vs.yaml": wantB} {
		if got := gitRun(t, rem.dir, "show", "main:"+file); strings.TrimSpace(got) != strings.TrimSpace(want) {
			t.Errorf("%s at main:\n%s\nwant:\n%s", file, got, want)
		}
	}
}

// TestBatchCarriesParses has 20 rollouts, a file each, take a step in one batch: the parse
// of each file's new version is in the cache under the blob the git CLI names for it, and
// is what parsing the bytes the git CLI shows gives, so that the next tick parses nothing.
func TestBatchCarriesParses(t *testing.T) {
	needGit(t)
	const n = 20
	lay := layouts[1]
	rem := newRemote(t, lay.files(n))
	r := openRepo(t, rem.url, nil)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3, Weights: rollout.CanaryAt(20), Base: rollout.CanaryAt(0)}
			if _, err := r.SetWeights(ctxT(t), docFor(t, i, lay.manifest(i)), c); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range n {
		file := lay.manifest(i)
		blob := plumbing.NewHash(strings.TrimSpace(gitRun(t, rem.dir, "rev-parse", "main:"+file)))
		m, ok := r.parsed.get(blob)
		if !ok {
			t.Errorf("%s: no parse of its new blob %s in the cache", file, blob)
			continue
		}
		want, err := parseDocs([]byte(gitRun(t, rem.dir, "show", "main:"+file)))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, m.docs); diff != "" {
			t.Errorf("%s: the carried parse is not the file's (-parsed +carried):\n%s", file, diff)
		}
	}
}

// TestPushOutlivesClose closes the repo (as canaryd does on SIGTERM) while a batch is about
// to push to a file:// remote, whose receive-pack is canaryd's own child: the push still
// ends as it would have, its commit on main (the git CLI says), no lock left behind, and a
// person's push after it goes through.
func TestPushOutlivesClose(t *testing.T) {
	needGit(t)
	rem := newRemote(t, layouts[0].files(1))
	r := openRepo(t, rem.url, nil)
	closed := make(chan error, 1)
	r.beforePush = func() {
		go func() { closed <- r.Close() }()
		for r.bg.Err() == nil {
			runtime.Gosched()
		}
	}
	sha, err := r.SetWeights(ctxT(t), docFor(t, 0, "deploy/vs.yaml"), rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3,
		Weights: rollout.CanaryAt(20), Base: rollout.CanaryAt(0)})
	if err != nil {
		t.Fatalf("a push begun before Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if head := strings.TrimSpace(gitRun(t, rem.dir, "rev-parse", "main")); head != sha {
		t.Fatalf("main is at %s, want the pushed %s", head, sha)
	}
	if _, err := os.Stat(filepath.Join(rem.dir, "refs", "heads", "main.lock")); !os.IsNotExist(err) {
		t.Fatalf("a lock on main is left behind: %v", err)
	}
	work := personClone(t, rem.url)
	writeFile(t, work, "NOTES.md", "after canaryd stopped\n")
	gitRun(t, work, "add", "-A")
	gitRun(t, work, "commit", "-q", "-m", "a person's note")
	gitRun(t, work, "push", "-q", "origin", "HEAD:main")
}

// gatherRepo is a Repo with only its write queue, for the flusher's choice of batch.
func gatherRepo(t *testing.T, window time.Duration) *Repo {
	return &Repo{cfg: Config{BatchWindow: window}, bg: t.Context(), urgent: make(chan struct{}, 1)}
}

func queuedWrite(t *testing.T, i int, at time.Time, kind rollout.MoveKind) *pendingWrite {
	return &pendingWrite{ctx: t.Context(), doc: docFor(t, i, "deploy/vs.yaml"), at: at, res: make(chan writeResult, 1),
		c: rollout.Commit{Kind: kind, Run: 1, Step: 1, Steps: 3, Weights: rollout.CanaryAt(40), Base: rollout.CanaryAt(0)}}
}

func batchNames(b []*pendingWrite) []string {
	var out []string
	for _, p := range b {
		out = append(out, p.doc.Name())
	}
	return out
}

// When the oldest write has waited its window but writes are still arriving (a tick's
// storm, its workers finishing one after another), the flusher gathers them: a write that
// comes after the window ends rides in the same batch, not the next one.
func TestBatchGathersAStorm(t *testing.T) {
	const window = 10 * time.Second // the newest must be 2 s quiet: the test appends long before that
	r := gatherRepo(t, window)
	now := time.Now()
	r.queue = []*pendingWrite{queuedWrite(t, 0, now.Add(-window), rollout.Forward), queuedWrite(t, 1, now, rollout.Forward)}
	got := make(chan []*pendingWrite, 1)
	go func() {
		b := r.takeForTest()
		got <- b
	}()
	r.enqueueForTest(queuedWrite(t, 2, time.Now(), rollout.Forward))
	b := <-got
	if names := batchNames(b); !slices.Equal(names, []string{"ro-0", "ro-1", "ro-2"}) {
		t.Errorf("batch %v, want the straggler ro-2 in it with ro-0 and ro-1", names)
	}
}

// A steady stream does not hold a batch back for ever: it is taken one more window after
// the oldest write's window, with what came so far; and a rollback is never held to gather.
func TestBatchGatherEnds(t *testing.T) {
	const window = 200 * time.Millisecond
	r := gatherRepo(t, window)
	r.queue = []*pendingWrite{queuedWrite(t, 0, time.Now(), rollout.Forward)}
	got := make(chan []*pendingWrite, 1)
	go func() {
		b := r.takeForTest()
		got <- b
	}()
	var b []*pendingWrite
	for i := 1; b == nil; i++ {
		select {
		case b = <-got:
		case <-time.After(window / 20): // a write every 10 ms, well inside the quiet gap of 40 ms
			if i > 1000 { // 10 s: a gather that never ends
				t.Fatalf("no batch taken while writes kept arriving for %d ticks", i)
			}
			r.enqueueForTest(queuedWrite(t, i, time.Now(), rollout.Forward))
		}
	}
	if len(b) < 2 {
		t.Errorf("batch of %d, want the writes of the gather too", len(b))
	}

	r = gatherRepo(t, time.Hour)
	r.queue = []*pendingWrite{queuedWrite(t, 0, time.Now().Add(-time.Hour), rollout.Forward), queuedWrite(t, 1, time.Now(), rollout.Rollback)}
	if b := r.takeForTest(); !slices.Equal(batchNames(b), []string{"ro-1", "ro-0"}) {
		t.Errorf("batch with a rollback %v, want it taken at once, rollback first", batchNames(b))
	}
}

// takeForTest is the flusher's choice of batch: its wait, then its take.
func (r *Repo) takeForTest() []*pendingWrite {
	if !r.awaitBatch() {
		return nil
	}
	return r.take()
}

// enqueueForTest queues p as enqueue does, without starting a flusher.
func (r *Repo) enqueueForTest(p *pendingWrite) {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	r.queue = append(r.queue, p)
}

// A write that comes while the flusher waits for the repo lock (held here as a sync holds
// it) rides in the batch it waits to write: the flusher takes its batch once it holds the
// lock, so the two writes are one push.
func TestBatchTakenUnderTheLock(t *testing.T) {
	needGit(t)
	rem := newRemote(t, layouts[0].files(2))
	r := openRepo(t, rem.url, func(c *Config) { c.BatchWindow = time.Millisecond })
	before := reflogLen(t, rem.dir)
	awaited := make(chan struct{})
	var once sync.Once
	r.awaited = func() { once.Do(func() { close(awaited) }) }
	if err := r.mu.LockContext(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	write := func(i int) {
		doc := docFor(t, i, "deploy/vs.yaml")
		_, err := r.SetWeights(ctxT(t), doc, rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 1, Steps: 3,
			Weights: rollout.CanaryAt(40), Base: rollout.CanaryAt(0)})
		errs <- err
	}
	go write(0)
	<-awaited // the flusher waits for the lock with ro-0's write due
	go write(1)
	waitQueued(t, r, 2)
	r.mu.Unlock()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if pushes := reflogLen(t, rem.dir) - before; pushes != 1 {
		t.Errorf("%d pushes, want the one batch of both writes", pushes)
	}
}
