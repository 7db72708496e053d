package serve_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// runCLI runs the canaryd CLI against the world's daemon.
func runCLI(t testing.TB, w *world, args ...string) (string, error) {
	cmd := exec.Command(canarydBinary(t), args...)
	cmd.Env = append(cmd.Environ(), "CANARYD_SERVER=http://"+w.listen, "CANARYD_TOKEN_FILE="+filepath.Join(w.dir, "api-token"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitCLI starts `canaryd status grpc-helloworld-py --watch --timeout 2m` and returns a
// function that waits for it and returns its exit code and output.
func waitCLI(t testing.TB, w *world) func() (int, string) {
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() {
		out, err := runCLI(t, w, "status", rolloutName, "--watch", "--timeout", "2m", "--interval", "200ms")
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
			out += err.Error()
		}
		done <- result{code, out}
	}()
	return func() (int, string) {
		select {
		case r := <-done:
			return r.code, r.out
		case <-time.After(150 * time.Second):
			return -1, "canaryd status --watch --timeout 2m did not exit within 150s"
		}
	}
}
