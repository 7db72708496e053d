package serve_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// resumeRollouts is how many rollouts BenchmarkResume runs ($CANARYD_BENCH_ROLLOUTS, else 1000).
var resumeRollouts = func() int {
	if n, err := strconv.Atoi(os.Getenv("CANARYD_BENCH_ROLLOUTS")); err == nil && n > 0 {
		return n
	}
	return 1000
}()

// BenchmarkResume runs 1,000 rollouts in one canaryd (gitops mode), each Progressing before
// its first step and checking its probe every second, kills it with SIGKILL, restarts it,
// and reports how long the new process took to be ready and to have every rollout running
// again (each has recorded a check made after the restart).
func BenchmarkResume(b *testing.B) {
	if testing.Short() {
		b.Skip("starts canaryd serve")
	}
	dir := b.TempDir()
	_, greeterAddr := startGreeter(b, "bench-greeter")
	remote := seedManyRollouts(b, dir, greeterAddr)
	listen := freeAddr(b)
	config := filepath.Join(dir, "canaryd.yaml")
	write(b, config, fmt.Sprintf("listen: %s\ndataDir: %s\ngit: {url: file://%s, branch: main, rollouts: \"rollouts/*.yaml\", pollInterval: 5s}\n",
		listen, filepath.Join(dir, "data"), remote))
	var cmd *exec.Cmd
	start := func() *exec.Cmd {
		c := exec.Command(canarydBinary(b), "serve", "--config", config, "--log-level", "warn")
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		return c
	}
	b.Cleanup(func() {
		if cmd != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	cmd = start()
	waitRollouts(b, listen, 5*time.Minute, func(r server.Rollout, _ time.Time) bool {
		return r.Phase == rollout.Progressing && r.LastVerdict != nil
	})
	for i := 0; i < b.N; i++ {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		restart := time.Now()
		cmd = start()
		ready := waitReady(b, listen, time.Minute)
		waitRollouts(b, listen, 2*time.Minute, func(r server.Rollout, since time.Time) bool {
			return r.Phase == rollout.Progressing && r.LastVerdict != nil && r.LastVerdict.Time.After(since)
		}, restart)
		b.ReportMetric(ready.Sub(restart).Seconds(), "ready-s")
		b.ReportMetric(time.Since(restart).Seconds(), "all-resumed-s")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// seedManyRollouts makes a remote with one VirtualService manifest and one spec per rollout,
// each probing probeAddr every second and waiting for a yearly tick.
func seedManyRollouts(b *testing.B, dir, probeAddr string) string {
	remote, _ := seedRollouts(b, dir, func(name string) string {
		return fmt.Sprintf("  steps: [10, 50, 100]\n  schedule: \"0 0 1 1 *\"\n  analysis: {interval: 1s}\n"+
			"  probe: {grpcurl: \"-plaintext %s helloworld.Greeter/SayHello\"}\n", probeAddr)
	})
	return remote
}

// seedRollouts makes a remote with resumeRollouts rollouts r0000, r0001, ..., one
// VirtualService manifest each, and specs whose lines after the manifest are plan(name). It
// returns the remote and every VirtualService, for a cluster.
func seedRollouts(b *testing.B, dir string, plan func(name string) string) (string, string) {
	remote := filepath.Join(dir, "remote.git")
	work := filepath.Join(dir, "seed")
	run := func(wd string, args ...string) {
		c := exec.Command("git", args...)
		c.Dir = wd
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=seed", "GIT_AUTHOR_EMAIL=s@x", "GIT_COMMITTER_NAME=seed", "GIT_COMMITTER_EMAIL=s@x")
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run(dir, "init", "-q", "--bare", "-b", "main", remote)
	run(dir, "init", "-q", "-b", "main", work)
	rules, err := os.ReadFile("../../deploy/sample/rules.yaml")
	if err != nil {
		b.Fatal(err)
	}
	vs := string(rules[strings.Index(string(rules), "apiVersion: networking.istio.io/v1\nkind: VirtualService"):])
	var all strings.Builder
	for i := 0; i < resumeRollouts; i++ {
		name := fmt.Sprintf("r%04d", i)
		m := strings.Replace(vs, "name: grpc-vs", "name: vs-"+name, 1)
		write(b, filepath.Join(work, "deploy", name+".yaml"), m)
		all.WriteString("---\n" + m)
		write(b, filepath.Join(work, "rollouts", name+".yaml"), fmt.Sprintf(`apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata: {name: %s}
spec:
  virtualService: {namespace: default, name: vs-%s}
  host: grpc-helloworld-py
  stable: v1
  canary: v2
  manifest: deploy/%s.yaml
`, name, name, name)+plan(name))
	}
	run(work, "add", "-A")
	run(work, "commit", "-q", "-m", fmt.Sprintf("%d rollouts", resumeRollouts))
	run(work, "push", "-q", remote, "main")
	return remote, all.String()
}

func waitReady(b *testing.B, listen string, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		if resp, err := http.Get("http://" + listen + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Now()
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("canaryd not ready within %s", timeout)
		}
	}
	return time.Time{}
}

// waitRollouts waits until every rollout meets cond.
func waitRollouts(b *testing.B, listen string, timeout time.Duration, cond func(server.Rollout, time.Time) bool, since ...time.Time) {
	var t0 time.Time
	if len(since) > 0 {
		t0 = since[0]
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for range tick.C {
		if time.Now().After(deadline) {
			b.Fatalf("rollouts not there within %s: %s", timeout, last)
		}
		resp, err := http.Get("http://" + listen + "/api/v1/rollouts")
		if err != nil {
			last = err.Error()
			continue
		}
		var list struct {
			Rollouts []server.Rollout `json:"rollouts"`
		}
		err = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if err != nil {
			last = err.Error()
			continue
		}
		ok := 0
		for _, r := range list.Rollouts {
			if cond(r, t0) {
				ok++
			}
		}
		last = fmt.Sprintf("%d of %d", ok, len(list.Rollouts))
		if ok == resumeRollouts {
			return
		}
	}
}
