// Package promserver starts a real Prometheus server (Debian's /usr/bin/prometheus, installed
// by test/deps/prometheus.sh) on a loopback port, scraping given targets every second, for
// the sandbox demo; test/promtest wraps it for the tests and benchmarks. It links no test
// code, so the canaryd binary can carry the demo.
package promserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DepsScript is the script that installs Prometheus.
const DepsScript = "test/deps/prometheus.sh"

// ErrNotInstalled is returned when no Prometheus binary is found.
var ErrNotInstalled = errors.New("prometheus is not installed (run " + DepsScript + ")")

// Config says how to start Prometheus.
type Config struct {
	// Binary is the prometheus executable; empty means /usr/bin/prometheus, then $PATH.
	Binary string
	// Targets are the host:port addresses to scrape at /metrics, as job "targets".
	Targets []string
	// ScrapeInterval is how often targets are scraped and rules evaluated; 0 means 1s.
	ScrapeInterval time.Duration
	// RuleFiles are rule files (absolute paths) Prometheus loads and evaluates every
	// ScrapeInterval.
	RuleFiles []string
	// Dir holds the config and the TSDB; empty means a new temporary directory, removed by Stop.
	Dir string
	// Log receives Prometheus' own output; nil discards it.
	Log io.Writer
}

// Server is a running Prometheus.
type Server struct {
	// URL is the server's base URL, such as http://127.0.0.1:41234.
	URL string
	// Addr is its host:port.
	Addr string

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	tempDir string
	once    sync.Once
	stopErr error
}

// Binary returns the Prometheus executable to run, or ErrNotInstalled.
func Binary() (string, error) {
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus", nil
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	return "", ErrNotInstalled
}

// Start runs Prometheus on a free loopback port and waits until it is ready. ctx bounds the
// start only; the server runs until Stop.
func Start(ctx context.Context, c Config) (*Server, error) {
	if c.Binary == "" {
		b, err := Binary()
		if err != nil {
			return nil, err
		}
		c.Binary = b
	}
	if c.ScrapeInterval <= 0 {
		c.ScrapeInterval = time.Second
	}
	var lastErr error
	for range 3 { // another process may take the free port before Prometheus binds it
		s, err := start(ctx, c)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, c Config) (*Server, error) {
	s := &Server{exited: make(chan struct{})}
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "promserver-")
		if err != nil {
			return nil, fmt.Errorf("prometheus dir: %w", err)
		}
		dir, s.tempDir = d, d
	}
	addr, err := freeAddr()
	if err != nil {
		s.cleanup()
		return nil, err
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config(c)), 0o644); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("prometheus config: %w", err)
	}
	s.Addr, s.URL = addr, "http://"+addr
	s.cmd = exec.Command(c.Binary,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	s.cmd.Stdout, s.cmd.Stderr = c.Log, c.Log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("start prometheus: %w", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func config(c Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  evaluation_interval: %s\n  scrape_timeout: %s\n",
		c.ScrapeInterval, c.ScrapeInterval, c.ScrapeInterval)
	if len(c.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range c.RuleFiles {
			fmt.Fprintf(&b, "  - %q\n", f)
		}
	}
	b.WriteString("scrape_configs:\n  - job_name: targets\n    static_configs:\n      - targets: [")
	for i, t := range c.Targets {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", t)
	}
	b.WriteString("]\n")
	return b.String()
}

func freeAddr() (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer lis.Close()
	return lis.Addr().String(), nil
}

// waitReady polls /-/ready until Prometheus answers 200, exits, or ctx (at most 60s) ends.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/-/ready", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("prometheus on %s exited before it was ready: %v", s.Addr, s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("prometheus on %s not ready: %w", s.Addr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop terminates Prometheus (SIGTERM, then SIGKILL after 10s), waits for it and removes
// its temporary directory. It is idempotent and safe to call from several goroutines.
func (s *Server) Stop() error {
	s.once.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
			}
		}
		s.cleanup()
	})
	return s.stopErr
}

func (s *Server) cleanup() {
	if s.tempDir != "" {
		s.stopErr = os.RemoveAll(s.tempDir)
	}
}
