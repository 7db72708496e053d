package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
)

// scriptedSource answers GET of grpc-helloworld-py with the next phase of its script on each
// call, staying on the last one.
type scriptedSource struct {
	*fakeSource
	mu     sync.Mutex
	script []rollout.Phase
	calls  int
}

func (s *scriptedSource) Rollout(ctx context.Context, name string) (server.Rollout, error) {
	r, err := s.fakeSource.Rollout(ctx, name)
	if err != nil || name != "grpc-helloworld-py" {
		return r, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := min(s.calls, len(s.script)-1)
	s.calls++
	r.Phase, r.Step = s.script[i], min(i+1, r.Steps)
	r.Weights = rollout.CanaryAt([]int{0, 40, 100}[r.Step-1])
	if r.Phase == rollout.RolledBack {
		r.Weights = rollout.CanaryAt(0)
	}
	return r, nil
}

func startScripted(t *testing.T, script ...rollout.Phase) string {
	t.Helper()
	srv := httptest.NewServer(server.New(server.Options{Source: &scriptedSource{fakeSource: newFakeSource(), script: script}}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestStatusWait: status NAME --watch waits like kubectl argo rollouts status: exit 0 on
// Succeeded, 1 on RolledBack, Aborted or Invalid, 3 when --timeout passes first; each
// change is printed once.
func TestStatusWait(t *testing.T) {
	P, S, R, A := rollout.Progressing, rollout.Succeeded, rollout.RolledBack, rollout.Aborted
	for _, tc := range []struct {
		name   string
		script []rollout.Phase
		args   []string
		code   int
		want   []string
	}{
		{"succeeded", []rollout.Phase{P, P, P, P, S}, []string{"grpc-helloworld-py", "--watch"}, 0,
			[]string{"grpc-helloworld-py: Progressing step 1/3 100/0", "Progressing step 2/3 60/40", "grpc-helloworld-py: Succeeded step 3/3 0/100"}},
		{"rolled back", []rollout.Phase{P, P, R}, []string{"grpc-helloworld-py", "-w"}, 1, []string{"RolledBack step 3/3 100/0"}},
		{"aborted, as json", []rollout.Phase{P, A}, []string{"grpc-helloworld-py", "--watch", "-o", "json"}, 1, []string{`"phase": "Aborted"`}},
		{"invalid", nil, []string{"broken", "--watch"}, 1, []string{"broken: Invalid", "problem: rollouts/broken.yaml:11:14"}},
		{"timeout", []rollout.Phase{P}, []string{"grpc-helloworld-py", "--watch", "--timeout", "50ms"}, 3, []string{"timed out after 50ms"}},
		{"timeout alone waits too", []rollout.Phase{P}, []string{"grpc-helloworld-py", "--timeout", "50ms"}, 3, []string{"timed out"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := tc.script
			if script == nil {
				script = []rollout.Phase{P}
			}
			url := startScripted(t, script...)
			code, out, errOut := runCmd(append([]string{"status", "--server", url, "--interval", "1ms"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if n := strings.Count(out, "Progressing step 2/3"); n > 1 {
				t.Errorf("an unchanged state was printed %d times:\n%s", n, out)
			}
		})
	}
}

// TestCompletion: shell completion offers the daemon's rollout names with their phases, and
// the values of -o.
func TestCompletion(t *testing.T) {
	url, _ := startAPI(t, newFakeSource())
	code, out, errOut := runCmd("__complete", "status", "--server", url, "grpc")
	if code != 0 || !strings.Contains(out, "grpc-helloworld-py\tProgressing\n") || strings.Contains(out, "broken") {
		t.Errorf("complete status grpc: exit %d %s\n%s", code, errOut, out)
	}
	code, out, _ = runCmd("__complete", "pause", "--server", url, "")
	if code != 0 || !strings.Contains(out, "broken\tInvalid\n") {
		t.Errorf("complete pause: exit %d\n%s", code, out)
	}
	code, out, _ = runCmd("__complete", "history", "-o", "")
	for _, w := range []string{"table\t", "json\t", "yaml\t"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("complete -o lacks %q: exit %d\n%s", w, code, out)
		}
	}
}
