package sandbox

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// seedFS holds copies of deploy/sample's manifests (a test keeps them equal to the
// originals), so the demo runs from any directory.
//
//go:embed seed
var seedFS embed.FS

// Paths in the demo's repository.
const (
	Manifest    = "deploy/sample/rules.yaml"
	RolloutFile = "rollouts/grpc-helloworld-py.yaml"
	RolloutName = "grpc-helloworld-py"
)

// Who commits in the demo besides canaryd.
const (
	seedAuthor   = "Sandbox Seed <seed@example.com>"
	PersonName   = "Pat Person"
	PersonEmail  = "pat@example.com"
	canarydName  = "canaryd"
	canarydEmail = "canaryd@example.com"
)

// SpecTimings are the rollout spec's timings; the demo uses DefaultTimings.
type SpecTimings struct {
	Schedule string        // "@every 5s"
	Interval time.Duration // analysis interval
	Bake     time.Duration
	Window   time.Duration // the success rate's window
	// MinRequests is how many canary calls the vs-stable gates need in a step before a
	// quiet test may pass; 0 means 1000, enough to catch a 2% regression at 40%.
	MinRequests int
	// ProgressDeadline, when set, is the spec's progressDeadline (onProgressDeadline: hold).
	ProgressDeadline time.Duration
}

// DefaultTimings keep a whole scenario well under a minute.
var DefaultTimings = SpecTimings{Schedule: "@every 5s", Interval: time.Second, Bake: 3 * time.Second, Window: 10 * time.Second}

// TimingsFor returns the spec's timings for a scenario: DefaultTimings, with a 10s bake
// for revert, so the person's revert lands during the 40% step even on a loaded machine
// (otherwise their push would race canaryd's next step).
func TimingsFor(sc Scenario) SpecTimings {
	t := DefaultTimings
	if sc == Revert {
		t.Bake = 10 * time.Second
	}
	return t
}

var specTmpl = template.Must(template.New("spec").Parse(`# The sample's rollout, as the README's example, tuned for a demo that lasts a minute:
# a step every 5s, gated by an anytime-valid test of the canary's gRPC errors against
# v1's (counted from Prometheus' raw counters), its p99 latency against v1's, and a
# grpcurl call through the gateway.
apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata:
  name: {{ .Name }}
spec:
{{ .Target }}  manifest: {{ .Manifest }}
  steps: [0, 40, 100]
  schedule: "{{ .T.Schedule }}"
{{- if .T.ProgressDeadline }}
  progressDeadline: {{ .T.ProgressDeadline }}
  onProgressDeadline: hold
{{- end }}
  analysis:
    interval: {{ .T.Interval }}
    bake: {{ .T.Bake }}
    failureLimit: 2     # Prometheus: the daemon's default (canaryd.yaml)
    metrics:
      - template: grpc-errors-vs-stable   # rolls back a worse canary, alpha: false rollbacks
        alpha: 0.01
        tolerance: 0.5                    # "not worse" means at most 1.5 times v1's error rate
        minRequests: {{ .MinRequests }}                  # canary calls a step needs before a quiet test passes
        onNoData: hold
      - template: grpc-latency-vs-stable
        max: 100ms                        # p99 may exceed v1's by this much
        minRequests: {{ .MinRequests }}
  probe:
    grpcurl: -d '{"name":"Jack"}' -plaintext {{ .Gateway }} helloworld.Greeter/SayHello
    expect: "Hello, Jack!"
    count: 5
    minSuccess: 0.6     # a smoke test: the statistics are the metrics' job
    timeout: 2s
{{- if .V2 }}
    canaryAddress: {{ .V2 }}          # straight to v2, so the probe tests it at 0 % too
    stableAddress: {{ .V1 }}          # a control: a failing v1 never counts against v2
{{- end }}
`))

func minRequests(t SpecTimings) int {
	if t.MinRequests > 0 {
		return t.MinRequests
	}
	return 1000
}

// RolloutSpec returns the demo's Rollout spec, probing through gateway (host:port).
func RolloutSpec(gateway string, t SpecTimings) []byte {
	return SampleVirtualService.RolloutSpec(gateway, t)
}

// RolloutSpec returns the demo's Rollout spec of the sample, probing through gateway.
func (s Sample) RolloutSpec(gateway string, t SpecTimings) []byte {
	return s.RolloutSpecPinned(gateway, t, "", "")
}

// RolloutSpecPinned is RolloutSpec with a probe that calls greeter v2 at v2 and greeter v1
// at v1 (host:port) straight, so it reaches the canary at any weight; empty addresses
// probe through the gateway.
func (s Sample) RolloutSpecPinned(gateway string, t SpecTimings, v1, v2 string) []byte {
	var b bytes.Buffer
	err := specTmpl.Execute(&b, map[string]any{
		"Name": RolloutName, "Target": s.target, "Manifest": s.Manifest, "Gateway": gateway, "T": t,
		"MinRequests": minRequests(t), "V1": v1, "V2": v2,
	})
	if err != nil {
		panic(err) // the template and its data are fixed
	}
	return b.Bytes()
}

var configTmpl = template.Must(template.New("config").Parse(`# canaryd serve's configuration for the demo (docs/config.md's format), gitops mode: no
# kubernetes section, so canaryd only commits and the gateway follows Git.
listen: {{ .Listen }}
dataDir: {{ .DataDir }}
git:
  url: {{ .URL }}
  branch: main
  rollouts: "rollouts/*.yaml"
  author: {name: ` + canarydName + `, email: ` + canarydEmail + `}
  pollInterval: 1s
prometheus: {address: {{ .Prometheus }}}
api: {tokenFile: {{ .TokenFile }}}
`))

// ServeConfig returns canaryd serve's configuration for a world in workdir.
func ServeConfig(workdir, listen, prometheus string) []byte {
	var b bytes.Buffer
	err := configTmpl.Execute(&b, map[string]string{
		"Listen": listen, "DataDir": filepath.Join(workdir, "data"),
		"URL": "file://" + filepath.Join(workdir, "remote.git"), "Prometheus": prometheus,
		"TokenFile": filepath.Join(workdir, "api-token"),
	})
	if err != nil {
		panic(err)
	}
	return b.Bytes()
}

// seedRemote creates the bare repository remote (branch main) holding the sample's
// manifests (the VirtualService or the GRPCRoute at 100/0, and the Deployments) and spec,
// committed and pushed with the git CLI from a scratch clone.
func seedRemote(ctx context.Context, workdir, remote string, s Sample, spec []byte) error {
	if err := runGit(ctx, workdir, seedAuthor, "init", "-q", "--bare", "-b", "main", remote); err != nil {
		return err
	}
	dir := filepath.Join(workdir, "seed")
	if err := runGit(ctx, workdir, seedAuthor, "init", "-q", "-b", "main", dir); err != nil {
		return err
	}
	err := fs.WalkDir(seedFS, "seed", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !s.seeds(strings.TrimPrefix(p, "seed/")) {
			return err
		}
		data, err := seedFS.ReadFile(p)
		if err != nil {
			return err
		}
		return writeFile(filepath.Join(dir, strings.TrimPrefix(p, "seed/")), data)
	})
	if err != nil {
		return fmt.Errorf("seed files: %w", err)
	}
	if err := writeFile(filepath.Join(dir, RolloutFile), spec); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"add", "-A"},
		{"commit", "-q", "-m", "Seed the sample system at 100/0 and its rollout"},
		{"push", "-q", remote, "main"},
	} {
		if err := runGit(ctx, dir, seedAuthor, args...); err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// runGit runs the git CLI in dir as who ("Name <email>"), with no system or global
// configuration, so the host's git settings (signing, hooks, default branch) do not leak in.
func runGit(ctx context.Context, dir, who string, args ...string) error {
	_, err := gitOutput(ctx, dir, who, args...)
	return err
}

func gitOutput(ctx context.Context, dir, who string, args ...string) (string, error) {
	name, email, _ := strings.Cut(who, " <")
	email = strings.TrimSuffix(email, ">")
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME="+name, "GIT_AUTHOR_EMAIL="+email,
		"GIT_COMMITTER_NAME="+name, "GIT_COMMITTER_EMAIL="+email)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}
