package serve_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/faultnet"
)

// serveGitDaemon serves the world's bare remote with git daemon on loopback, pushes
// allowed, and returns its host:port.
func (w *world) serveGitDaemon() string { return gitDaemon(w.t, w.dir) }

// gitDaemon serves the repositories below base with git daemon on loopback, pushes
// allowed, until the test ends, and returns its host:port once it listens.
func gitDaemon(t testing.TB, base string) string {
	t.Helper()
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--listen="+host, "--port="+port, "--export-all",
		"--enable=receive-pack", "--base-path="+base, base)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+base)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("git daemon does not listen on %s: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a port about to open
	}
}

// useRemote points serve's config at url, with the Git timeouts given.
func (w *world) useRemote(url, timeout, unreachableAfter string) {
	w.t.Helper()
	data, err := os.ReadFile(w.config)
	if err != nil {
		w.t.Fatal(err)
	}
	c := strings.Replace(string(data), "url: file://"+w.remote, "url: "+url, 1)
	c = strings.Replace(c, "  pollInterval: 1s\n", "  pollInterval: 1s\n  timeout: "+timeout+"\n  unreachableAfter: "+unreachableAfter+"\n", 1)
	write(w.t, w.config, c)
}

func (w *world) readyz() int {
	resp, err := http.Get("http://" + w.listen + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeStalledGitRemote puts a proxy that accepts and stays silent in front of the Git
// remote while the canary, at 40 %, starts failing: the rollback reaches canary 0 in the
// cluster while Git still says 40 %, status shows Git as unreachable and /readyz turns
// not-ready; once the remote answers again the rollback's commit lands, nothing lost.
func TestServeStalledGitRemote(t *testing.T) {
	w := newWorld(t)
	proxy := faultnet.Start(t, w.serveGitDaemon())
	w.useRemote("git://"+proxy.Addr()+"/remote.git", "3s", "4s")
	w.serve()
	w.eventually(60*time.Second, "step 2/3 at 40% in Git and the cluster", func() (bool, string) {
		g, c := w.gitWeights(), w.clusterWeights()
		return g.Canary == 40 && c == g, "Git " + g.String() + ", cluster " + c.String()
	})
	proxy.Stall()
	w.v2.SetErrors(0.5, codes.Unavailable)

	w.eventually(60*time.Second, "canary 0 in the cluster", func() (bool, string) {
		c := w.clusterWeights()
		return c.Canary == 0, c.String()
	})
	if g := w.gitWeights(); g.Canary != 40 {
		t.Fatalf("Git moved to %s through a silent remote", g)
	}
	w.eventually(30*time.Second, "Git shown as unreachable, /readyz 503", func() (bool, string) {
		r := w.status()
		return w.readyz() == http.StatusServiceUnavailable && strings.Contains(r.Git, "unreachable"), r.Git
	})
	if r := w.status(); r.Phase != rollout.RolledBack {
		t.Errorf("phase %s while the rollback's commit waits, want RolledBack: %s", r.Phase, r.Message)
	}

	proxy.Resume()
	w.eventually(120*time.Second, "the rollback's commit lands", func() (bool, string) {
		g := w.gitWeights()
		return g.Canary == 0, g.String()
	})
	ks := w.kinds()
	if ks[0] != string(rollout.Rollback) {
		t.Errorf("the newest commit is a %q, want the rollback: %v", ks[0], ks)
	}
	if count(ks, string(rollout.Rollback)) != 1 {
		t.Errorf("%d rollback commits, want one: %v", count(ks, string(rollout.Rollback)), ks)
	}
	for _, c := range w.canarydCommits() {
		if strings.Contains(c, "Rollout-Step: 3/3") {
			t.Errorf("the failing canary reached 100%%:\n%s", c)
		}
	}
	w.eventually(30*time.Second, "ready again, Git reachable", func() (bool, string) {
		r := w.status()
		return w.readyz() == http.StatusOK && r.Git == "", r.Git
	})
	w.checkAgree("after the stall")
}
