package serve_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scaleRepo is a bare remote seeded with n rollouts (s0000…) that each take their first
// step (0 %) at once and their second (40 %) at one tick, with a post-receive hook that
// logs every push: its time (ns) and the new head.
type scaleRepo struct {
	dir     string // bare repository
	work    string // the seed's clone
	pushLog string
	url     string
	tick    time.Time
	cron    string // the rollouts' schedule, firing once a day at tick
}

// The layouts of a scale repo's manifests: a file each in one folder, all in one
// manifest, or a file each a hundred to a folder.
const (
	perFile = "file-per-rollout"
	oneFile = "one-manifest"
	nested  = "nested-folders"
)

// seedScale seeds the remote, its manifests laid out as layout says. The tick is `lead` from now, on a whole second.
func seedScale(t testing.TB, dir string, n int, layout string, lead time.Duration) *scaleRepo {
	t.Helper()
	s := &scaleRepo{dir: filepath.Join(dir, "remote.git"), pushLog: filepath.Join(dir, "pushes.log")}
	s.url = "file://" + s.dir
	work := filepath.Join(dir, "seed")
	run := func(wd string, args ...string) {
		c := exec.Command("git", args...)
		c.Dir = wd
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=seed", "GIT_AUTHOR_EMAIL=s@x", "GIT_COMMITTER_NAME=seed", "GIT_COMMITTER_EMAIL=s@x")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run(dir, "init", "-q", "--bare", "-b", "main", s.dir)
	run(dir, "init", "-q", "-b", "main", work)
	rules, err := os.ReadFile("../../deploy/sample/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vs := string(rules[strings.Index(string(rules), "apiVersion: networking.istio.io/v1\nkind: VirtualService"):])
	s.work = work
	s.tick = time.Now().UTC().Add(lead).Truncate(time.Second)
	s.cron = cronAt(s.tick)
	cron := s.cron
	var all strings.Builder
	for i := range n {
		name := fmt.Sprintf("s%04d", i)
		m := strings.Replace(vs, "name: grpc-vs", "name: vs-"+name, 1)
		manifest := "deploy/" + name + ".yaml"
		switch layout {
		case oneFile:
			manifest = "deploy/all.yaml"
			all.WriteString("---\n" + m)
		case nested:
			manifest = fmt.Sprintf("deploy/g%03d/%s.yaml", i/100, name)
			write(t, filepath.Join(work, manifest), m)
		default:
			write(t, filepath.Join(work, manifest), m)
		}
		write(t, filepath.Join(work, "rollouts", name+".yaml"), fmt.Sprintf(`apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata: {name: %s}
spec:
  virtualService: {namespace: default, name: vs-%s}
  host: grpc-helloworld-py
  stable: v1
  canary: v2
  manifest: %s
  steps: [0, 40, 100]
  schedule: %q
  timeZone: UTC
`, name, name, manifest, cron))
	}
	if layout == oneFile {
		write(t, filepath.Join(work, "deploy", "all.yaml"), all.String())
	}
	run(work, "add", "-A")
	run(work, "commit", "-q", "-m", fmt.Sprintf("%d rollouts", n))
	run(work, "push", "-q", s.dir, "main")
	hook := filepath.Join(s.dir, "hooks", "post-receive")
	write(t, hook, "#!/bin/sh\nwhile read old new ref; do echo \"$(date +%s%N) $new\" >> "+s.pushLog+"; done\n")
	if err := os.Chmod(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

// cronAt is a schedule that fires once a day, at t's second.
func cronAt(t time.Time) string {
	return fmt.Sprintf("%d %d %d * * *", t.Second(), t.Minute(), t.Hour())
}

// retick moves every rollout's tick to lead from now, as a person pushing one commit of
// all the specs: a test need not guess how long the start-up takes.
func (s *scaleRepo) retick(t testing.TB, n int, lead time.Duration) {
	t.Helper()
	tick := time.Now().UTC().Add(lead).Truncate(time.Second)
	for i := range n {
		p := filepath.Join(s.work, "rollouts", fmt.Sprintf("s%04d.yaml", i))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		write(t, p, strings.Replace(string(data), fmt.Sprintf("schedule: %q", s.cron), fmt.Sprintf("schedule: %q", cronAt(tick)), 1))
	}
	for _, args := range [][]string{{"commit", "-q", "-am", "rollouts: move the tick"}, {"pull", "-q", "--rebase", s.dir, "main"}, {"push", "-q", s.dir, "HEAD:main"}} {
		c := exec.Command("git", args...)
		c.Dir = s.work
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=seed", "GIT_AUTHOR_EMAIL=s@x", "GIT_COMMITTER_NAME=seed", "GIT_COMMITTER_EMAIL=s@x")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	s.tick, s.cron = tick, cronAt(tick)
}

// serveGitDaemon serves the remote's parent over git:// (push enabled) on loopback and
// returns the remote's git:// URL.
func (s *scaleRepo) serveGitDaemon(t testing.TB) string {
	return "git://" + gitDaemon(t, filepath.Dir(s.dir)) + "/remote.git"
}

// pushes reads the push log: each push's time and new head, in order.
func (s *scaleRepo) pushes(t testing.TB) (times []time.Time, heads []string) {
	t.Helper()
	data, err := os.ReadFile(s.pushLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		ns, head, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(ns, 10, 64)
		if err != nil {
			t.Fatalf("push log line %q: %v", line, err)
		}
		times, heads = append(times, time.Unix(0, v)), append(heads, head)
	}
	return times, heads
}

// landed maps each commit on main (after the seed) to the index of the push that brought
// it, by walking the push log's heads: the commits of push k are those reachable from its
// head and not from push k-1's.
func (s *scaleRepo) landed(t testing.TB) map[string]int {
	t.Helper()
	_, heads := s.pushes(t)
	out := map[string]int{}
	for k, h := range heads {
		args := []string{"--git-dir", s.dir, "rev-list", h}
		if k > 0 {
			args = append(args, "^"+heads[k-1])
		}
		o, err := exec.Command("git", args...).Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		for _, c := range strings.Fields(string(o)) {
			if _, ok := out[c]; !ok {
				out[c] = k
			}
		}
	}
	return out
}

// stepCommits returns, by rollout, the commits on main whose trailers (as git
// interpret-trailers --parse reads them) say Rollout-Step step for it. A commit may carry
// several rollouts' trailers (a batch over its budget), each group led by its Rollout.
func (s *scaleRepo) stepCommits(t testing.TB, step string) map[string][]string {
	t.Helper()
	o, err := exec.Command("git", "--git-dir", s.dir, "rev-list", "main").Output()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, sha := range strings.Fields(string(o)) {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for _, tr := range gitSections(t, s.dir, sha) {
				if tr["Rollout-Step"] == step && tr["Rollout"] != "" {
					mu.Lock()
					out[tr["Rollout"]] = append(out[tr["Rollout"]], sha)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return out
}

// gitSections reads a commit's trailers with git interpret-trailers --parse, one map per
// rollout: a Rollout trailer starts the next.
func gitSections(t testing.TB, dir, sha string) []map[string]string {
	cmd := exec.Command("sh", "-c", "git --git-dir '"+dir+"' log -1 --format=%B "+sha+" | git interpret-trailers --parse")
	o, err := cmd.Output()
	if err != nil {
		t.Errorf("interpret-trailers of %s: %v", sha, err)
		return nil
	}
	var secs []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(string(o)), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		if k == "Rollout" || len(secs) == 0 {
			secs = append(secs, map[string]string{})
		}
		secs[len(secs)-1][k] = v
	}
	return secs
}

// logSections reads main's commits, newest first, with one git log: a scaleCommit for each
// rollout's trailers in each commit.
func logSections(t testing.TB, dir string) []scaleCommit {
	t.Helper()
	o, err := exec.Command("git", "--git-dir", dir, "log", "main",
		"--format=%H%x1e%(trailers:key=Rollout,key=Rollout-Step,key=Rollout-Kind,separator=%x1f)").Output()
	if err != nil {
		t.Fatal(err)
	}
	var out []scaleCommit
	for _, line := range strings.Split(string(o), "\n") {
		sha, trs, ok := strings.Cut(strings.TrimSpace(line), "\x1e")
		if !ok {
			continue
		}
		var c *scaleCommit
		for _, tr := range strings.Split(trs, "\x1f") {
			k, v, _ := strings.Cut(tr, ": ")
			switch {
			case k == "Rollout":
				out = append(out, scaleCommit{sha: sha, rollout: v})
				c = &out[len(out)-1]
			case c == nil:
			case k == "Rollout-Step":
				c.step = v
			case k == "Rollout-Kind":
				c.kind = v
			}
		}
	}
	return out
}

// startScale starts canaryd serve (gitops, Git only, unless extra, appended to its config,
// says otherwise) on url and returns its address and process.
func startScale(t testing.TB, dir, url string, extra ...string) (string, *exec.Cmd) {
	t.Helper()
	listen := freeAddr(t)
	config := filepath.Join(dir, "canaryd.yaml")
	write(t, filepath.Join(dir, "token"), "scale-token\n")
	pprof := os.Getenv("CANARYD_SCALE_PROFILE") != ""
	// maxManifestBytes: one manifest of 10,000 routes is 4.6 MB, above the 4 MiB default.
	write(t, config, fmt.Sprintf("listen: %s\ndataDir: %s\ngit: {url: %q, branch: main, rollouts: \"rollouts/*.yaml\", pollInterval: 5s, maxManifestBytes: 16777216}\napi: {tokenFile: %s, pprof: %t}\n",
		listen, filepath.Join(dir, "data"), url, filepath.Join(dir, "token"), pprof)+strings.Join(extra, ""))
	level := os.Getenv("CANARYD_SCALE_LOG")
	if level == "" {
		level = "warn"
	}
	cmd := exec.Command(canarydBinary(t), "serve", "--config", config, "--log-level", level)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	return listen, cmd
}

// waitSteps waits until every one of n rollouts has a commit at step in Git.
func (s *scaleRepo) waitSteps(t testing.TB, n int, step string, timeout time.Duration) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.stepCommitsFast(t, step)
		if got >= n {
			return s.stepCommits(t, step)
		}
		if time.Now().After(deadline) {
			o, _ := exec.Command("git", "--git-dir", s.dir, "log", "-3", "main").CombinedOutput()
			t.Fatalf("%d of %d rollouts at step %s in Git after %s; newest commits:\n%s", got, n, step, timeout, o)
		}
		time.Sleep(500 * time.Millisecond) // polling the remote, not synchronising
	}
}

// stepCommitsFast counts the rollouts with a commit at step, with one git log.
func (s *scaleRepo) stepCommitsFast(t testing.TB, step string) int {
	seen := map[string]bool{}
	for _, c := range logSections(t, s.dir) {
		if c.step == step {
			seen[c.rollout] = true
		}
	}
	return len(seen)
}

// TestManyRolloutsOneTick runs 200 rollouts in one canaryd (gitops mode, file:// remote),
// all due on one tick. The git CLI is the oracle: each rollout's step is one commit whose
// trailers git interpret-trailers parses, and the tick's 200 commits came in a handful
// of pushes (the remote's post-receive hook logs each push).
func TestManyRolloutsOneTick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts canaryd serve")
	}
	n := 200
	if v, err := strconv.Atoi(os.Getenv("CANARYD_SCALE_TEST_N")); err == nil {
		n = v
	}
	for _, layout := range []string{perFile, oneFile} {
		t.Run(layout, func(t *testing.T) {
			canarydBinary(t)
			dir := t.TempDir()
			s := seedScale(t, dir, n, layout, time.Hour) // no tick until retick
			started := time.Now()
			startScale(t, dir, s.url)
			s.waitSteps(t, n, "1/3", 5*time.Minute)
			t.Logf("%d rollouts started in %s", n, time.Since(started).Round(time.Second))
			// Every canaryd sees the new tick within its pollInterval (5s) and a reload.
			s.retick(t, n, 20*time.Second)
			byRollout := s.waitSteps(t, n, "2/3", time.Until(s.tick)+time.Minute)
			landed := s.landed(t)
			pushes := map[int]bool{}
			for name, shas := range byRollout {
				if len(shas) != 1 {
					t.Errorf("%s has %d commits at step 2/3, want 1: %v", name, len(shas), shas)
				}
				for _, sha := range shas {
					pushes[landed[sha]] = true
				}
			}
			t.Logf("%d rollouts: step 2 in %d pushes", n, len(pushes))
			if len(pushes) > 5 {
				t.Errorf("the tick's %d steps took %d pushes, want at most 5", n, len(pushes))
			}
		})
	}
}

// percentile returns the p-th percentile of sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}
