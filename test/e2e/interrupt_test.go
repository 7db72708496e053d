package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCtrlCStopsEverything interrupts the demo at three moments: while the world starts,
// while the scenario plays, and after the summary while the world is kept up. Each time the
// demo must exit by itself and leave no process of its workdir and nothing listening.
func TestCtrlCStopsEverything(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		ready func(d *demo) bool
	}{
		{"while starting", nil, func(d *demo) bool { return strings.Contains(d.output(), "starting the world") }},
		{"while playing", []string{"--scenario", "fail"}, func(d *demo) bool {
			return strings.Contains(d.output(), "Progressing")
		}},
		{"after the summary", []string{"--scenario", "success"}, func(d *demo) bool {
			return strings.Contains(d.output(), "The world keeps running")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startDemo(t, tt.args...)
			waitUntil(t, d, limit, tt.ready)
			if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			err := d.wait(t, 60*time.Second)
			var ee *exec.ExitError
			if err != nil && (!errors.As(err, &ee) || !ee.Exited()) {
				t.Errorf("the demo did not exit by itself: %v", err)
			}
			if procs := processesOf(t, d.workdir); len(procs) > 0 {
				t.Errorf("processes of the workdir left running: %v", procs)
			}
			for _, addr := range []string{d.gateway, d.metrics, d.listen} {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					t.Errorf("%s still listens", addr)
				}
			}
		})
	}
}

// waitUntil polls ready every 50ms until it holds, failing when the demo exits first or
// after d.
func waitUntil(t *testing.T, dm *demo, d time.Duration, ready func(*demo) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !ready(dm) {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %v:\n%s", d, dm.output())
		}
		select {
		case err := <-dm.done:
			dm.done <- err
			t.Fatalf("canaryd demo exited early (%v):\n%s", err, dm.output())
		case <-tick.C:
		}
	}
}

// processesOf returns the command lines of live processes that name dir (Prometheus and
// canaryd serve name files in the workdir).
func processesOf(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), dir) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue // a zombie holds nothing
		}
		out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

// TestKilledDemoTakesItsChildren kills the demo outright (SIGKILL, no chance to clean up)
// while it plays: Prometheus and canaryd serve must die with it (they ask the kernel for
// SIGKILL when their parent dies).
func TestKilledDemoTakesItsChildren(t *testing.T) {
	d := startDemo(t, "--scenario", "fail")
	waitUntil(t, d, limit, func(d *demo) bool { return strings.Contains(d.output(), "Progressing") })
	if procs := processesOf(t, d.workdir); len(procs) < 2 {
		t.Fatalf("want Prometheus and canaryd serve running, found %v", procs)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = d.wait(t, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for procs := processesOf(t, d.workdir); len(procs) > 0; procs = processesOf(t, d.workdir) {
		if time.Now().After(deadline) {
			t.Fatalf("processes of the workdir outlive the killed demo: %v", procs)
		}
		<-tick.C
	}
}
