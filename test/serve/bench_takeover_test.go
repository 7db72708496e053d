package serve_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
	"github.com/canarydio/canaryd/test/kubetest"
)

// BenchmarkTakeover runs resumeRollouts rollouts (1,000 unless $CANARYD_BENCH_ROLLOUTS says)
// in two canaryd replicas electing a leader by a Lease (3s) on a real API server, apply
// mode (the new leader re-asserts Git's weights in the cluster for every rollout it rebuilds). Once every rollout stands at its first step, the leader is killed with SIGKILL. It
// reports the time from the kill to the new leader serving every rollout's state from its
// own store (rebuilt from Git), and to its first move (an abort sent to it) landing in Git.
func BenchmarkTakeover(b *testing.B) {
	if testing.Short() {
		b.Skip("starts kube-apiserver and two canaryd serve processes")
	}
	kube := kubetest.Start(b)
	dir := b.TempDir()
	remote, manifests := seedTakeoverRollouts(b, dir)
	// The VirtualServices the rollouts step, in the cluster.
	kc, err := kubetest.NewClient(kube.Config)
	if err != nil {
		b.Fatal(err)
	}
	objs, err := kubetest.Decode([]byte(manifests))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := kc.Create(context.Background(), objs, false); err != nil {
		b.Fatal(err)
	}
	kubeconfig := writeKubeconfig(b, dir, kube.Config)
	write(b, filepath.Join(dir, "token"), "bench-token\n")
	type replica struct {
		listen string
		cmd    *exec.Cmd
	}
	start := func(name string) *replica {
		r := &replica{listen: freeAddr(b)}
		config := filepath.Join(dir, name+".yaml")
		write(b, config, fmt.Sprintf(`listen: %s
dataDir: %s
git: {url: file://%s, branch: main, rollouts: "rollouts/*.yaml", pollInterval: 2s}
kubernetes:
  mode: apply
  kubeconfig: %s
  leaderElection: {enabled: true, namespace: default, name: canaryd-bench, leaseDuration: 3s, renewDeadline: 2s, retryPeriod: 500ms}
api: {tokenFile: %s}
`, r.listen, filepath.Join(dir, name), remote, kubeconfig, filepath.Join(dir, "token")))
		r.cmd = exec.Command(canarydBinary(b), "serve", "--config", config, "--log-level", "warn")
		r.cmd.Env = append(os.Environ(), "POD_NAME="+name)
		r.cmd.Stderr = os.Stderr
		if err := r.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if r.cmd.ProcessState == nil {
				r.cmd.Process.Kill()
				r.cmd.Wait()
			}
		})
		return r
	}
	leads := func(listen string) bool {
		req, _ := http.NewRequest("POST", "http://"+listen+"/api/v1/rollouts/r0000/resume", nil)
		req.Header.Set("Authorization", "Bearer bench-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode != http.StatusServiceUnavailable
	}
	atFirstStep := func(r server.Rollout, _ time.Time) bool { return r.Phase == rollout.Progressing && r.Step == 1 }
	for i := 0; i < b.N; i++ {
		a := start(fmt.Sprintf("a%d", i))
		waitReady(b, a.listen, 5*time.Minute)
		for !leads(a.listen) {
			time.Sleep(100 * time.Millisecond)
		}
		waitRollouts(b, a.listen, 10*time.Minute, atFirstStep)
		next := start(fmt.Sprintf("b%d", i))
		waitReady(b, next.listen, 5*time.Minute)
		a.cmd.Process.Signal(syscall.SIGKILL)
		a.cmd.Wait()
		killed := time.Now()
		for !leads(next.listen) {
			if time.Since(killed) > time.Minute {
				b.Fatal("no new leader within a minute")
			}
			time.Sleep(20 * time.Millisecond)
		}
		waitRollouts(b, next.listen, 2*time.Minute, atFirstStep)
		serving := time.Since(killed)
		req, _ := http.NewRequest("POST", "http://"+next.listen+"/api/v1/rollouts/r0001/abort", strings.NewReader(`{"reason":"bench"}`))
		req.Header.Set("Authorization", "Bearer bench-token")
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			b.Fatalf("abort on the new leader: %v %v", resp, err)
		}
		for {
			out, _ := exec.Command("git", "--git-dir", remote, "log", "-1", "--format=%(trailers:key=Rollout-Kind,valueonly)", "main").Output()
			if strings.TrimSpace(string(out)) == "abort" {
				break
			}
			if time.Since(killed) > 2*time.Minute {
				b.Fatal("the new leader's abort did not land")
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.ReportMetric(serving.Seconds(), "serving-s")
		b.ReportMetric(time.Since(killed).Seconds(), "first-move-s")
		next.cmd.Process.Signal(syscall.SIGTERM)
		next.cmd.Wait()
		if i+1 < b.N {
			b.Fatal("one takeover per run: use -benchtime 1x")
		}
	}
}

// seedTakeoverRollouts makes a remote with resumeRollouts rollouts that each take their
// first step (0 %) at once and then wait for a yearly tick; it also returns every
// VirtualService, for the cluster.
func seedTakeoverRollouts(b *testing.B, dir string) (string, string) {
	return seedRollouts(b, dir, func(string) string { return "  steps: [0, 50, 100]\n  schedule: \"0 0 1 1 *\"\n" })
}
