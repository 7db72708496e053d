package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// child is a process in its own process group, killed with it when the demo dies
// (Pdeathsig), and stopped group-wide.
type child struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func startChild(cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// stop sends SIGTERM to the child's process group, then SIGKILL after grace, and waits
// for the child. It returns nil when the child ended on the signal or cleanly.
func (c *child) stop(grace time.Duration) error {
	pgid := c.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.exited
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // anything the child left in its group
	var ee *exec.ExitError
	if errors.As(c.err, &ee) && !ee.Exited() {
		return nil // ended by our signal
	}
	return c.err
}

// startServe writes canaryd.yaml and the API token and runs `canaryd serve`, then waits
// until its status API knows the rollout.
func (w *World) startServe(ctx context.Context) error {
	w.StatusURL = "http://" + w.opts.Listen + "/"
	if w.opts.NoServe {
		return nil
	}
	bin := w.opts.Canaryd
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("find canaryd: %w", err)
		}
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	w.APIToken = hex.EncodeToString(token)
	if err := os.WriteFile(filepath.Join(w.Workdir, "api-token"), []byte(w.APIToken+"\n"), 0o600); err != nil {
		return err
	}
	cfg := filepath.Join(w.Workdir, "canaryd.yaml")
	if err := os.WriteFile(cfg, ServeConfig(w.Workdir, w.opts.Listen, w.Prometheus.URL), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(w.Workdir, "logs", "canaryd.log"))
	if err != nil {
		return err
	}
	w.closers = append(w.closers, logf.Close)
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, w.Workdir
	c, err := startChild(cmd)
	if err != nil {
		return fmt.Errorf("start canaryd serve: %w", err)
	}
	w.serve = c
	w.closers = append(w.closers, func() error { return c.stop(10 * time.Second) })
	return w.waitServe(ctx)
}

// waitServe polls the status API until it knows the rollout, canaryd exits, or 60s pass.
func (w *World) waitServe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := w.Rollout(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-w.serve.exited:
			return fmt.Errorf("canaryd serve exited (%v); see %s", w.serve.err, filepath.Join(w.Workdir, "logs", "canaryd.log"))
		case <-ctx.Done():
			return fmt.Errorf("canaryd serve on %s not ready: %w (last: %v)", w.opts.Listen, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// ServeExited returns a channel closed when canaryd serve has exited (never, without one).
func (w *World) ServeExited() <-chan struct{} {
	if w.serve == nil {
		return nil
	}
	return w.serve.exited
}

var apiClient = &http.Client{Timeout: 2 * time.Second}

// Rollout returns the demo rollout's status from canaryd's API.
func (w *World) Rollout(ctx context.Context) (server.Rollout, error) {
	var ro server.Rollout
	err := w.getJSON(ctx, "/api/v1/rollouts/"+RolloutName, &ro)
	return ro, err
}

// History returns up to limit events of the demo rollout, newest first.
func (w *World) History(ctx context.Context, limit int) ([]rollout.Event, error) {
	var page server.HistoryPage
	err := w.getJSON(ctx, "/api/v1/rollouts/"+RolloutName+"/history?limit="+fmt.Sprint(limit), &page)
	return page.Events, err
}

func (w *World) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(w.StatusURL, "/")+path, nil)
	if err != nil {
		return err
	}
	if w.APIToken != "" {
		req.Header.Set("Authorization", "Bearer "+w.APIToken)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}
