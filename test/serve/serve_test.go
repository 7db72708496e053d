package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// writeConfig writes canaryd.yaml (apply mode on the test's API server) and a kubeconfig.
func (w *world) writeConfig() {
	kubeconfig := writeKubeconfig(w.t, w.dir, w.kube.Config)
	write(w.t, filepath.Join(w.dir, "api-token"), w.token+"\n")
	w.listen = freeAddr(w.t)
	w.config = filepath.Join(w.dir, "canaryd.yaml")
	write(w.t, w.config, fmt.Sprintf(`listen: %s
dataDir: %s
git:
  url: file://%s
  branch: main
  rollouts: "rollouts/*.yaml"
  author: {name: canaryd, email: canaryd@example.com}
  pollInterval: 1s
kubernetes:
  mode: apply
  kubeconfig: %s
prometheus: {address: %s}
api: {tokenFile: %s}
`, w.listen, filepath.Join(w.dir, "data"), w.remote, kubeconfig, w.prom.URL, filepath.Join(w.dir, "api-token")))
}

// serve starts canaryd serve; env adds variables such as the crash hook's.
func (w *world) serve(env ...string) {
	w.t.Helper()
	cmd := exec.Command(canarydBinary(w.t), "serve", "--config", w.config, "--log-level", "debug")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &lockedWriter{w}, &lockedWriter{w}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.proc = cmd
	w.procDone = make(chan error, 1)
	go func() { w.procDone <- cmd.Wait() }()
	w.t.Cleanup(func() { w.stop() })
	w.eventually(30*time.Second, "canaryd ready", func() (bool, string) {
		select {
		case err := <-w.procDone:
			w.procDone <- err
			return true, ""
		default:
		}
		resp, err := http.Get("http://" + w.listen + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

// stop sends SIGTERM and waits; it reports a daemon that does not stop cleanly.
func (w *world) stop() {
	if w.proc == nil {
		return
	}
	w.proc.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-w.procDone:
		if err != nil && !strings.Contains(err.Error(), "killed") {
			w.t.Errorf("canaryd serve exited with %v\n%s", err, w.logText())
		}
	case <-time.After(20 * time.Second):
		w.proc.Process.Kill()
		<-w.procDone
		w.t.Errorf("canaryd serve did not stop on SIGTERM within 20s")
	}
	w.proc = nil
}

// waitKilled waits for the process to die of the crash hook's SIGKILL.
func (w *world) waitKilled() {
	w.t.Helper()
	select {
	case err := <-w.procDone:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			w.t.Fatalf("canaryd serve ended with %v, want killed by the hook\n%s", err, w.logText())
		}
	case <-time.After(60 * time.Second):
		w.t.Fatalf("the crash hook did not fire\n%s", w.logText())
	}
	w.proc = nil
}

type lockedWriter struct{ w *world }

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.w.logMu.Lock()
	defer l.w.logMu.Unlock()
	return l.w.logs.Write(p)
}

func (w *world) logText() string {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	s := w.logs.String()
	if len(s) > 6000 {
		s = "...\n" + s[len(s)-6000:]
	}
	return s
}

func (w *world) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not within %s (last: %s)\ncanaryd's log:\n%s", what, timeout, last, w.logText())
		}
		<-tick.C
	}
}

// api calls the status API; token "" sends no Authorization header. A call not answered
// within a minute fails the test.
func (w *world) api(method, path, token string, body any) (int, []byte) {
	w.t.Helper()
	return w.apiWithin(time.Minute, method, path, token, body)
}

// apiWithin is api with a deadline of d for the answer.
func (w *world) apiWithin(d time.Duration, method, path, token string, body any) (int, []byte) {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, "http://"+w.listen+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: d}).Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (w *world) status() server.Rollout {
	w.t.Helper()
	code, data := w.api("GET", "/api/v1/rollouts/"+rolloutName, "", nil)
	var r server.Rollout
	if code != 200 || json.Unmarshal(data, &r) != nil {
		w.t.Fatalf("status: %d %s", code, data)
	}
	return r
}

func (w *world) history() []rollout.Event {
	w.t.Helper()
	code, data := w.api("GET", "/api/v1/rollouts/"+rolloutName+"/history?limit=1000", "", nil)
	var page struct {
		Events []rollout.Event `json:"events"`
	}
	if code != 200 || json.Unmarshal(data, &page) != nil {
		w.t.Fatalf("history: %d %s", code, data)
	}
	return page.Events
}

func (w *world) waitPhase(timeout time.Duration, phases ...rollout.Phase) server.Rollout {
	w.t.Helper()
	var r server.Rollout
	w.eventually(timeout, fmt.Sprintf("phase %v", phases), func() (bool, string) {
		r = w.status()
		for _, p := range phases {
			if r.Phase == p {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s at %s: %s", r.Phase, r.Weights, r.Message)
	})
	return r
}

// commits returns the remote's commits, newest first, as "sha subject\ntrailers".
func (w *world) commits() []string {
	out := w.git(w.remote, "log", "--format=%H %an: %s%n%(trailers:only,unfold)%x00", "main")
	var cs []string
	for _, c := range strings.Split(out, "\x00") {
		if c = strings.TrimSpace(c); c != "" {
			cs = append(cs, c)
		}
	}
	return cs
}

func (w *world) canarydCommits() []string {
	var out []string
	for _, c := range w.commits() {
		if strings.Contains(c, "Rollout: "+rolloutName) {
			out = append(out, c)
		}
	}
	return out
}

var _ = context.Background
