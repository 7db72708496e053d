package gitops

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

const benchCommits = 20000

// benchRepo returns a bare repository with files files and benchCommits commits of history
// (each after the first changes one file) plus the sample manifest, built once with one git
// fast-import stream and cached under $HOME/.cache/canaryd/bench.
func benchRepo(b *testing.B, files int) string {
	b.Helper()
	home, err := os.UserHomeDir()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(home, ".cache", "canaryd", "bench", fmt.Sprintf("files-%d-commits-%d.git", files, benchCommits))
	if _, err := os.Stat(filepath.Join(dir, "canaryd-complete")); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	gitRun(b, filepath.Dir(mkdir(b, dir)), "init", "-q", "--bare", "-b", "main", dir)
	cmd := exec.Command("git", "fast-import", "--quiet", "--done")
	cmd.Dir = dir
	cmd.Env = gitEnv(dir)
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join("testdata", "edit", "sample-rules.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(in, 1<<20)
	writeHistory(w, files, rules)
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("git fast-import: %v\n%s", err, out)
	}
	writeFile(b, dir, "canaryd-complete", "")
	return dir
}

func mkdir(b *testing.B, dir string) string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// benchPath spreads files over two directory levels.
func benchPath(i int) string { return fmt.Sprintf("src/d%02d/e%02d/f%06d.txt", i%100, i/100%100, i) }

// writeHistory writes the fast-import stream of the benchmark history.
func writeHistory(w *bufio.Writer, files int, rules []byte) {
	data := func(s string) { fmt.Fprintf(w, "data %d\n%s\n", len(s), s) }
	commit := func(n int, msg string) {
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\n", 1700000000+n)
		data(msg)
	}
	commit(0, "seed")
	for _, p := range []string{"deploy/sample/rules.yaml", "deploy/by-hand/rules.yaml"} {
		fmt.Fprintf(w, "M 100644 inline %s\n", p)
		data(string(rules))
	}
	for i := range files {
		fmt.Fprintf(w, "M 100644 inline %s\n", benchPath(i))
		data(fmt.Sprintf("file %d\n", i))
	}
	for n := 1; n < benchCommits; n++ {
		commit(n, fmt.Sprintf("change %d", n))
		fmt.Fprintf(w, "M 100644 inline %s\n", benchPath(n*7919%files))
		data(fmt.Sprintf("file %d revision %d\n", n*7919%files, n))
	}
	fmt.Fprintf(w, "done\n")
}

// benchSetup returns a fresh remote (a local clone of the cached history) and a Repo on it
// whose cache was seeded with a local clone, as a restarted canaryd has it.
func benchSetup(b *testing.B, files int) (rem string, r *Repo, doc *rollout.Document) {
	src := benchRepo(b, files)
	root := b.TempDir()
	rem = filepath.Join(root, "remote.git")
	gitRun(b, root, "clone", "-q", "--bare", "--no-hardlinks", src, rem)
	cacheDir := b.TempDir()
	probe := &Repo{cfg: Config{URL: "file://" + rem, Branch: "main", Dir: cacheDir}}
	gitRun(b, root, "clone", "-q", "--bare", rem, probe.cachePath())
	r = openRepo(b, "file://"+rem, func(c *Config) { c.Dir = cacheDir })
	doc = parseDoc(b, sampleSpec)
	step(b, r, doc, 1) // walks the whole history once to learn canaryd never wrote
	return rem, r, doc
}

// canarydStep moves the canary between 20% and 60% so that every call commits.
func canarydStep(b *testing.B, r *Repo, doc *rollout.Document, i int) {
	k := 2 - i%2 // 2, 1, 2, 1, ...
	step(b, r, doc, k)
}

// BenchmarkStep measures one weight step (read, edit, commit, push to a local bare remote)
// on repositories of growing size with 20,000 commits of history. "commit-only" is
// canaryd's own share without the remote (the receiving git's connectivity check walks
// the whole tree of the old head, which grows with the file count on any client); "vs-cli"
// runs the git CLI's same edit (git pull + git commit -a + git push from a worktree) side
// by side.
func BenchmarkStep(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Fatal("git CLI not found: run test/deps/git.sh")
	}
	for _, files := range []int{100, 10000, 100000} {
		b.Run(fmt.Sprintf("files=%d/canaryd", files), func(b *testing.B) {
			_, r, doc := benchSetup(b, files)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				canarydStep(b, r, doc, i)
				i++
			}
		})
		b.Run(fmt.Sprintf("files=%d/commit-only", files), func(b *testing.B) {
			_, r, doc := benchSetup(b, files)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				localCommit(b, r, doc, i)
				i++
			}
		})
		b.Run(fmt.Sprintf("files=%d/vs-cli", files), func(b *testing.B) {
			rem, r, doc := benchSetup(b, files)
			work := filepath.Join(b.TempDir(), "work")
			gitRun(b, filepath.Dir(work), "clone", "-q", "file://"+rem, work)
			var ours, theirs time.Duration
			i := 0
			for b.Loop() { // three pairs per iteration, so that slow CLI steps still average
				for range 3 {
					start := time.Now()
					canarydStep(b, r, doc, i)
					ours += time.Since(start)
					start = time.Now()
					cliStep(b, work, i)
					theirs += time.Since(start)
					i++
				}
			}
			b.ReportMetric(float64(ours.Microseconds())/float64(i)/1000, "canaryd-ms/step")
			b.ReportMetric(float64(theirs.Microseconds())/float64(i)/1000, "cli-ms/step")
			b.ReportMetric(float64(theirs)/float64(ours), "x-faster")
		})
	}
}

// cliStep is what a person does by hand: pull, edit the weights, git commit -a, git push.
// It edits its own copy of the manifest, so that canaryd does not see its own rollout
// overridden.
func cliStep(b *testing.B, work string, i int) {
	gitRun(b, work, "pull", "-q", "--ff-only")
	p := filepath.Join(work, "deploy", "by-hand", "rules.yaml")
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	out, err := SetWeights(data, seedRef, rollout.CanaryAt(30+i%2*40))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o644); err != nil {
		b.Fatal(err)
	}
	gitRun(b, work, "commit", "-q", "-am", "by hand")
	gitRun(b, work, "push", "-q", "origin", "HEAD:main")
}

// localCommit is canaryd's own share of a step, without the remote: read the manifest at
// the head, edit it, and write the blob, the trees on its path and the commit.
func localCommit(b *testing.B, r *Repo, doc *rollout.Document, i int) {
	head, err := r.head()
	if err != nil {
		b.Fatal(err)
	}
	data, _, err := r.fileAt(head, doc.Spec.Manifest)
	if err != nil {
		b.Fatal(err)
	}
	c := rollout.Commit{Kind: rollout.Forward, Run: 1, Step: 2, Steps: 3, Weights: rollout.CanaryAt(i % 101)}
	out, err := SetWeights(data, RefOf(doc), c.Weights)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := r.writeCommit(newOverlay(r.store), head.Hash, head.TreeHash, []fileEdit{newFileEdit(doc.Spec.Manifest, out)}, Message(doc, c)); err != nil {
		b.Fatal(err)
	}
}
