package gitops

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// stallProxy forwards TCP connections to a target; while stalled it accepts new
// connections and then stays silent, as a hung Git server or a black-holing firewall does.
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled atomic.Bool
	mu      sync.Mutex
	conns   []net.Conn
}

func startStallProxy(t testing.TB, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			if p.stalled.Load() {
				continue // accepted, never answered
			}
			wg.Go(func() { p.forward(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *stallProxy) forward(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// TestStalledRemoteBoundsEveryCall puts a proxy that accepts and stays silent in front of
// a git:// remote: a fetch ends at its deadline, a write waiting behind it gives up at its
// own deadline with a clear error, and once the remote answers again the write lands.
func TestStalledRemoteBoundsEveryCall(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	proxy := startStallProxy(t, serveDaemon(t, rem.root))
	url := "git://" + proxy.ln.Addr().String() + "/deploy.git"
	r := openRepo(t, url, func(c *Config) { c.FetchTimeout, c.PushTimeout = 3*time.Second, 3*time.Second })
	doc := parseDoc(t, sampleSpec)
	r.Manage(doc)
	c := believe(t, r, doc, rollout.Commit{Kind: rollout.Rollback, Run: 1, Steps: 3, Weights: rollout.CanaryAt(0), Reason: "probe failed"})

	proxy.stalled.Store(true)
	syncErr := make(chan error, 1)
	go func() { _, err := r.Sync(context.Background()); syncErr <- err }()
	for len(r.mu) == 0 { // wait until the fetch holds the repo
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := r.SetWeights(ctx, doc, c)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "busy") {
		t.Errorf("a write behind a stalled fetch = %v, want its own deadline with a clear reason", err)
	}
	select {
	case err := <-syncErr:
		if err == nil {
			t.Error("a fetch from a silent remote succeeded")
		}
	case <-time.After(time.Minute):
		t.Fatal("a fetch from a silent remote outlived its deadline by far")
	}
	if _, err := r.SetWeights(context.Background(), doc, c); err == nil {
		t.Error("a push to a silent remote succeeded")
	}

	proxy.stalled.Store(false)
	sha, err := r.SetWeights(context.Background(), doc, c)
	if err != nil {
		t.Fatalf("the write once the remote answers again: %v", err)
	}
	if head := gitRun(t, rem.dir, "rev-parse", "main"); head != sha {
		t.Errorf("the remote's head is %s, want the rollback %s", head, sha)
	}
}
