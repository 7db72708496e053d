package serve_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// scaleRollouts is how many rollouts BenchmarkScale runs ($CANARYD_SCALE_ROLLOUTS, else 1000).
var scaleRollouts = func() int {
	if n, err := strconv.Atoi(os.Getenv("CANARYD_SCALE_ROLLOUTS")); err == nil && n > 0 {
		return n
	}
	return 1000
}()

// BenchmarkScale runs scaleRollouts rollouts in one canaryd (gitops mode, Git only, no
// gates), all due on one tick, over a file:// and a git:// (git daemon) remote, with one
// VirtualService per file (in one folder, and a hundred to a folder) and all in one
// manifest. It reports the lateness of each step
// after its tick (when the push that carried it landed: p50, p99, max), the pushes that
// carried the tick, canaryd's peak RSS and CPU seconds, and then a mass rollback: every
// rollout, at 40 %, aborted at once through the API, and the time until every canary is
// at 0 in Git (p50 and all). Run it with make scale.
func BenchmarkScale(b *testing.B) {
	if testing.Short() {
		b.Skip("starts canaryd serve")
	}
	canarydBinary(b)
	for _, layout := range []string{perFile, oneFile, nested} {
		for _, transport := range []string{"file", "git"} {
			name := layout + "/" + transport
			b.Run(fmt.Sprintf("%s/n=%d", name, scaleRollouts), func(b *testing.B) {
				for range b.N {
					scaleOnce(b, layout, transport)
				}
			})
		}
	}
}

func scaleOnce(b *testing.B, layout, transport string) {
	n := scaleRollouts
	dir := b.TempDir()
	lead := 30*time.Second + time.Duration(n)*5*time.Millisecond // for the start-up (8 s at 10,000), before the tick
	if d, err := time.ParseDuration(os.Getenv("CANARYD_SCALE_LEAD")); err == nil {
		lead = d
	}
	s := seedScale(b, dir, n, layout, lead)
	started := time.Now()
	url := s.url
	if transport == "git" {
		url = s.serveGitDaemon(b)
	}
	listen, cmd := startScale(b, dir, url)
	s.waitFast(b, n, func(c scaleCommit) bool { return c.step == "1/3" }, time.Until(s.tick))
	if time.Now().After(s.tick) {
		b.Fatalf("the start-up took past the tick at %s", s.tick)
	}
	b.ReportMetric(time.Since(started).Seconds(), "startup-s")
	profiled := profileStorm(b, listen, s.tick, "tick")
	reads := readDuring(b, listen, s.tick)
	steps := s.waitFast(b, n, func(c scaleCommit) bool { return c.step == "2/3" }, time.Until(s.tick)+5*time.Minute)
	times, _ := s.pushes(b)
	landed := s.landed(b)
	var late []time.Duration
	pushes := map[int]bool{}
	for _, c := range steps {
		k := landed[c.sha]
		pushes[k] = true
		late = append(late, times[k].Sub(s.tick))
	}
	slices.Sort(late)
	b.ReportMetric(percentile(late, 0.5).Seconds(), "late-p50-s")
	b.ReportMetric(percentile(late, 0.99).Seconds(), "late-p99-s")
	b.ReportMetric(late[len(late)-1].Seconds(), "late-max-s")
	b.ReportMetric(float64(len(pushes)), "pushes/tick")
	got := reads()
	b.ReportMetric(percentile(got, 0.99).Seconds()*1000, "list-p99-ms")
	profiled()

	profiled = profileStorm(b, listen, time.Now(), "rollback")
	aborted := massAbort(b, listen, n)
	backs := s.waitFast(b, n, func(c scaleCommit) bool { return c.kind == "abort" }, 5*time.Minute)
	times, _ = s.pushes(b)
	landed = s.landed(b)
	var back []time.Duration
	for _, c := range backs {
		back = append(back, times[landed[c.sha]].Sub(aborted))
	}
	slices.Sort(back)
	profiled()
	b.ReportMetric(percentile(back, 0.5).Seconds(), "rollback-p50-s")
	b.ReportMetric(back[len(back)-1].Seconds(), "rollback-all-s")
	rss, cpu := procUsage(b, cmd.Process.Pid)
	b.ReportMetric(rss, "peak-RSS-MiB")
	b.ReportMetric(cpu, "cpu-s")
}

// profileStorm, with $CANARYD_SCALE_PROFILE set to a folder, takes canaryd's CPU profile
// for 10 s from 1 s before at, into FOLDER/NAME-cpu.pprof; the function it returns waits
// for that and takes a heap profile, FOLDER/NAME-heap.pprof. Without it, both do nothing.
func profileStorm(b *testing.B, listen string, at time.Time, name string) func() {
	folder := os.Getenv("CANARYD_SCALE_PROFILE")
	if folder == "" {
		return func() {}
	}
	get := func(path, file string) {
		req, _ := http.NewRequest("GET", "http://"+listen+path, nil)
		req.Header.Set("Authorization", "Bearer scale-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Errorf("profile %s: %v", path, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(folder, file))
		if err != nil {
			b.Error(err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			b.Errorf("profile %s: %s %v", path, resp.Status, err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Until(at.Add(-time.Second))) // a profile's start, not synchronising
		get("/debug/pprof/profile?seconds=10", name+"-cpu.pprof")
	}()
	return func() {
		<-done
		get("/debug/pprof/heap", name+"-heap.pprof")
	}
}

// readDuring lists every rollout (GET /api/v1/rollouts) five times a second, as a few
// status pages and dashboards would, from the tick until the function it returns is
// called, which returns each list's latency.
func readDuring(b *testing.B, listen string, tick time.Time) func() []time.Duration {
	stop := make(chan struct{})
	done := make(chan []time.Duration)
	go func() {
		var ds []time.Duration
		defer func() { done <- ds }()
		time.Sleep(time.Until(tick)) // the storm's start, not synchronising
		pace := time.NewTicker(200 * time.Millisecond)
		defer pace.Stop()
		for first := true; ; first = false {
			if !first { // the first list goes at the tick: a storm may be over within 200 ms
				select {
				case <-stop:
					return
				case <-pace.C:
				}
			}
			start := time.Now()
			resp, err := http.Get("http://" + listen + "/api/v1/rollouts")
			if err != nil {
				b.Errorf("list rollouts: %v", err)
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Errorf("list rollouts: %s %v", resp.Status, err)
				return
			}
			ds = append(ds, time.Since(start))
		}
	}()
	return func() []time.Duration {
		close(stop)
		ds := <-done
		if len(ds) == 0 {
			b.Fatal("no list of the rollouts answered during the storm")
		}
		slices.Sort(ds)
		return ds
	}
}

// massAbort aborts rollouts s0000… through the API, 32 requests at a time, and returns
// when it started.
func massAbort(b *testing.B, listen string, n int) time.Time {
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/api/v1/rollouts/s%04d/abort", listen, i), strings.NewReader(`{"reason":"mass rollback"}`))
			req.Header.Set("Authorization", "Bearer scale-token")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Errorf("abort s%04d: %v", i, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("abort s%04d: %s", i, resp.Status)
			}
		})
	}
	wg.Wait()
	return start
}

// procUsage returns a process's peak RSS (MiB) and CPU seconds (user + system) so far.
func procUsage(b *testing.B, pid int) (rssMiB, cpuS float64) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			rssMiB = kb / 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return rssMiB, (ut + st) / 100 // USER_HZ
}

// scaleCommit is one commit on main, read with one git log.
type scaleCommit struct{ sha, rollout, step, kind string }

// waitFast waits until n rollouts have a commit that meets cond and returns, by rollout,
// the newest such commit.
func (s *scaleRepo) waitFast(b *testing.B, n int, cond func(scaleCommit) bool, timeout time.Duration) map[string]scaleCommit {
	deadline := time.Now().Add(timeout)
	for {
		got := map[string]scaleCommit{}
		for _, c := range logSections(b, s.dir) {
			if _, seen := got[c.rollout]; !seen && cond(c) {
				got[c.rollout] = c
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d rollouts there in Git after %s", len(got), n, timeout)
		}
		time.Sleep(200 * time.Millisecond) // polling the remote, not synchronising
	}
}
