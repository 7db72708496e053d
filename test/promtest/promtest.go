// Package promtest starts a real Prometheus server for tests: it wraps sandbox/promserver
// (the launcher the demo uses) with a test's lifecycle.
package promtest

import (
	"context"
	"strings"
	"testing"

	"github.com/canarydio/canaryd/sandbox/promserver"
)

// DepsScript is the script that installs Prometheus.
const DepsScript = promserver.DepsScript

// ErrNotInstalled is returned when no Prometheus binary is found.
var ErrNotInstalled = promserver.ErrNotInstalled

type (
	// Config says how to start Prometheus.
	Config = promserver.Config
	// Server is a running Prometheus.
	Server = promserver.Server
)

// Binary returns the Prometheus executable to run, or ErrNotInstalled.
func Binary() (string, error) { return promserver.Binary() }

// Start runs Prometheus on a free loopback port and waits until it is ready.
func Start(ctx context.Context, c Config) (*Server, error) { return promserver.Start(ctx, c) }

// StartT starts Prometheus for a test and stops it in t.Cleanup. It skips the test under
// -short, and fails it, naming test/deps/prometheus.sh, when Prometheus is not installed.
func StartT(t testing.TB, targets ...string) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real Prometheus; skipped with -short")
	}
	if _, err := Binary(); err != nil {
		t.Fatalf("%v", err)
	}
	s, err := Start(context.Background(), Config{Targets: targets, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop prometheus: %v", err)
		}
	})
	return s
}

// testLog sends Prometheus' output to the test log while the test runs.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a write after the test ended
	l.t.Logf("prometheus: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}
