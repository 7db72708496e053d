// Package e2e runs `canaryd demo` end to end, as a newcomer would: each scenario as a
// real process tree (the canaryd binary built by the test, Prometheus, canaryd serve) on
// free loopback ports, then checks the must-holds in the demo's Git remote, the
// split of traffic at 40%, and that Ctrl-C leaves nothing running.
package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox"
	"github.com/canarydio/canaryd/test/promtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// canaryd builds the canaryd binary once per test run.
func canaryd(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs canaryd demo with Prometheus and canaryd serve; skipped with -short")
	}
	if _, err := promtest.Binary(); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("the git CLI is not installed (run test/deps/git.sh): %v", err)
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "canaryd-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "canaryd")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/canarydio/canaryd/cmd/canaryd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build canaryd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// demo is one `canaryd demo` process.
type demo struct {
	cmd                      *exec.Cmd
	out                      *bytes.Buffer
	workdir                  string
	gateway, metrics, listen string
	done                     chan error
}

func startDemo(t testing.TB, args ...string) *demo {
	t.Helper()
	d := &demo{
		out: new(bytes.Buffer), workdir: filepath.Join(t.TempDir(), "work"),
		gateway: freeAddr(t), metrics: freeAddr(t), listen: freeAddr(t), done: make(chan error, 1),
	}
	args = append([]string{"demo", "--workdir", d.workdir, "--gateway", d.gateway,
		"--gateway-metrics", d.metrics, "--listen", d.listen, "--timeout", "170s"}, args...)
	d.cmd = exec.Command(canaryd(t), args...)
	d.cmd.Stdout, d.cmd.Stderr = &syncWriter{w: d.out}, &syncWriter{w: d.out}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		d.done <- nil
		t.Logf("canaryd demo %s:\n%s", strings.Join(args, " "), d.output())
	})
	return d
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (d *demo) output() string {
	w := d.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return d.out.String()
}

// wait returns the demo's exit error, failing the test after limit.
func (d *demo) wait(t testing.TB, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(limit):
		t.Fatalf("canaryd demo still runs after %v", limit)
		return nil
	}
}

func (d *demo) remote() string { return filepath.Join(d.workdir, "remote.git") }

// commit is one commit of the remote, as git log tells it.
type commit struct {
	sha, author, subject string
	trailers             map[string]string
}

func gitLog(t *testing.T, remote string) []commit {
	t.Helper()
	out, err := exec.Command("git", "-C", remote, "log", "--format=%H%x1f%an%x1f%s%x1f%(trailers:only,unfold)%x1e", "main").Output()
	if err != nil {
		t.Fatalf("git log: %v", err)
	}
	var log []commit
	for _, rec := range strings.Split(string(out), "\x1e") {
		rec = strings.TrimSpace(rec)
		if rec == "" {
			continue
		}
		f := strings.Split(rec, "\x1f")
		c := commit{sha: f[0], author: f[1], subject: f[2], trailers: map[string]string{}}
		for _, l := range strings.Split(f[3], "\n") {
			if k, v, ok := strings.Cut(l, ": "); ok {
				c.trailers[k] = v
			}
		}
		log = append(log, c)
	}
	return log
}

func weightsAt(t *testing.T, remote, rev string) rollout.Weights {
	t.Helper()
	data, err := exec.Command("git", "-C", remote, "show", rev+":"+sandbox.Manifest).Output()
	if err != nil {
		t.Fatalf("git show %s: %v", rev, err)
	}
	w, err := gitops.ReadWeights(data, sandbox.Ref)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// stepCommit returns canaryd's commit for step k/3, checking its trailers.
func stepCommit(t *testing.T, log []commit, k int, weights string) (commit, bool) {
	t.Helper()
	for _, c := range log {
		if c.trailers[gitops.TrailerStep] != fmt.Sprintf("%d/3", k) {
			continue
		}
		if c.trailers[gitops.TrailerRollout] != sandbox.RolloutName || c.trailers[gitops.TrailerRun] == "" ||
			c.trailers[gitops.TrailerWeights] != weights || c.author != "canaryd" {
			t.Errorf("step %d/3 commit %.12s: author %s, trailers %v", k, c.sha, c.author, c.trailers)
		}
		return c, true
	}
	return commit{}, false
}
