package authority_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
)

const (
	benchRollouts = 1000
	benchCommits  = 20000
)

func benchSpec(i int) string {
	return fmt.Sprintf(`apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata: {name: ro-%d}
spec:
  virtualService: {namespace: default, name: vs-%d}
  host: grpc-helloworld-py
  stable: v1
  canary: v2
  manifest: vs/ro-%d.yaml
  steps: [0, 40, 100]
  schedule: "@every 1s"
`, i, i, i)
}

func benchManifest(i, canary int) string {
	m := strings.Replace(manifest, "name: grpc-vs", fmt.Sprintf("name: vs-%d", i), 1)
	m = strings.Replace(m, "weight: 100", fmt.Sprintf("weight: %d", 100-canary), 1)
	return strings.Replace(m, "weight: 0", fmt.Sprintf("weight: %d", canary), 1)
}

// benchHistory writes a fast-import stream: one manifest per rollout, then benchCommits
// canaryd step commits with trailers, round robin over the rollouts (runs of 3 steps).
func benchHistory(w io.Writer) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	commit := func(n int, msg string, files map[string]string) {
		fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter canaryd <canaryd@example.com> %d +0000\ndata %d\n%s\n", n, now+int64(n), len(msg), msg)
		if n > 1 {
			fmt.Fprintf(w, "from :%d\n", n-1)
		}
		for p, body := range files {
			fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n", p, len(body), body)
		}
	}
	seed := map[string]string{}
	for i := range benchRollouts {
		seed[fmt.Sprintf("vs/ro-%d.yaml", i)] = benchManifest(i, 0)
	}
	commit(1, "seed", seed)
	steps := []int{0, 40, 100}
	for n := range benchCommits {
		i, j := n%benchRollouts, n/benchRollouts
		run, k := j/3+1, j%3
		msg := fmt.Sprintf("ro-%d: step %d/3, canary v2 at %d%%\n\nRollout: ro-%d\nRollout-Kind: step\nRollout-Run: %d\nRollout-Step: %d/3\nRollout-Weights: v1=%d,v2=%d\n",
			i, k+1, steps[k], i, run, k+1, 100-steps[k], steps[k])
		commit(n+2, msg, map[string]string{fmt.Sprintf("vs/ro-%d.yaml", i): benchManifest(i, steps[k])})
	}
	fmt.Fprint(w, "done\n")
}

// benchRemote builds the bare remote once, cached under $HOME/.cache/canaryd/bench.
func benchRemote(b *testing.B) string {
	home, _ := os.UserHomeDir()
	dir := filepath.Join(home, ".cache", "canaryd", "bench", fmt.Sprintf("rollouts-%d-commits-%d.git", benchRollouts, benchCommits))
	if _, err := os.Stat(filepath.Join(dir, "canaryd-complete")); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		b.Fatal(err)
	}
	git(b, filepath.Dir(dir), "init", "-q", "--bare", "-b", "main", dir)
	cmd := exec.Command("git", "fast-import", "--quiet", "--done")
	cmd.Dir = dir
	in, _ := cmd.StdinPipe()
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(in, 1<<20)
	benchHistory(bw)
	bw.Flush()
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("git fast-import: %v\n%s", err, out)
	}
	writeFile(b, filepath.Join(dir, "canaryd-complete"), "")
	return dir
}

// BenchmarkRebuild1000 rebuilds the state of 1,000 rollouts from a repository with 20,000
// canaryd commits, as a new leader does: a fresh process on the cache (nothing in memory),
// one report of every rollout, and Recover for each.
func BenchmarkRebuild1000(b *testing.B) {
	remote := benchRemote(b)
	cache := b.TempDir()
	ctx := context.Background()
	first, err := gitops.Open(ctx, gitops.Config{URL: "file://" + remote, Dir: cache, MaxWalk: 2 * benchCommits})
	if err != nil {
		b.Fatal(err)
	}
	first.Close()
	docs := make([]*rollout.Document, benchRollouts)
	byName := map[string]*rollout.Document{}
	for i := range docs {
		ds, err := rollout.Parse(fmt.Sprintf("rollouts/ro-%d.yaml", i), []byte(benchSpec(i)))
		if err != nil {
			b.Fatal(err)
		}
		docs[i] = ds[0]
		byName[ds[0].Name()] = ds[0]
	}
	b.ResetTimer()
	for b.Loop() {
		repo, err := gitops.Open(ctx, gitops.Config{URL: "file://" + remote, Dir: cache, MaxWalk: 2 * benchCommits})
		if err != nil {
			b.Fatal(err)
		}
		repo.Manage(docs...)
		chs, err := repo.Sync(ctx)
		if err != nil || len(chs) != benchRollouts {
			b.Fatalf("sync: %d reports, %v", len(chs), err)
		}
		now := time.Now()
		for _, ch := range chs {
			st := controller.Recover(byName[ch.Rollout], ch, now)
			if st.Phase != rollout.Progressing && st.Phase != rollout.Succeeded || st.Own == "" {
				b.Fatalf("%s: %s (%s)", ch.Rollout, st.Phase, st.Message)
			}
		}
		repo.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/rebuild")
}
