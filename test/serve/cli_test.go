package serve_test

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// runCLI runs the canaryd CLI against the world's daemon.
func runCLI(t testing.TB, w *world, args ...string) (string, error) {
	cmd := exec.Command(canarydBinary(t), args...)
	cmd.Env = append(cmd.Environ(), "CANARYD_SERVER=http://"+w.listen, "CANARYD_TOKEN_FILE="+filepath.Join(w.dir, "api-token"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}
