package server

import (
	"context"
	"flag"
	"fmt"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

var screenshotDir = flag.String("screenshot", "", "write headless Chromium screenshots of the status pages into this directory")

// chromium returns the path of Debian's Chromium, skipping under -short and failing
// otherwise when it is not installed.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("renders the page in headless Chromium; skipped with -short")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run test/deps/chromium.sh")
	return ""
}

// runChromium runs headless Chromium offline with args and returns its standard output.
func runChromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// chromiumSource is the sample with a rollout rolled back by a failing probe (its last
// verdict a later pass), one rolled back in run 1 and undone in run 2,
// and one that cannot run because its VirtualService does not exist.
func chromiumSource() *fakeSource {
	src := sampleSource()
	src.add(Rollout{Name: "two-runs", Phase: rollout.RolledBack, Run: 2, Step: 0, Steps: 3, Stable: "v1", Canary: "v2",
		Weights: rollout.CanaryAt(0), Commit: "c4", Message: "undo: errors in the logs"}, reversed(twoRuns())...)
	src.add(Rollout{Name: "rolled", Phase: rollout.RolledBack, Run: 1, Step: 0, Steps: 3, Stable: "v1", Canary: "v2",
		Weights: rollout.CanaryAt(0), Commit: "c2", LastVerdict: &rollout.Verdict{Gate: "probe", Result: rollout.Pass, Time: t0.Add(3 * time.Minute)}},
		reversed(twoRuns()[4:])...)
	src.add(Rollout{Name: "lost", Phase: rollout.Progressing, Steps: 3, Stable: "v1", Canary: "v2"},
		rollout.Event{Time: t0, Kind: rollout.EventMoveFailed, Message: "preflight: virtualservice default/grpc-vs not found"})
	return src
}

func reversed(evs []rollout.Event) []rollout.Event {
	out := make([]rollout.Event, len(evs))
	for i, ev := range evs {
		out[len(evs)-1-i] = ev
		out[len(evs)-1-i].Seq = 0
	}
	return out
}

func TestPageInChromium(t *testing.T) {
	bin := chromium(t)
	src := chromiumSource()
	srv := httptest.NewServer(New(Options{Source: src, Now: src.now, CommitURL: "https://git.example/acme/deploy/commit/{sha}"}).Handler())
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		path     string
		want     []string
		verdicts int // verdict markers in the chart(s)
	}{
		{"/", []string{"grpc-helloworld-py", "payments", "broken", "140 is outside 0..100", "in 42s",
			`<span class="badge stuck"`, "virtualservice default/grpc-vs not found", "Rolled back by", `<g class="run">`,
			`<g class="mark rolled-back">`, ">undo</text>", ">promote</text>", `href="https://git.example/acme/deploy/commit/9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"`, "Rolled back: probe: UNAVAILABLE"}, 17},
		{"/rollouts/grpc-helloworld-py", []string{"grpc-helloworld-py", "Progressing", "alice@laptop", "destination_version", "4f1c2a9d0e7b"}, 15},
		{"/rollouts/rolled", []string{"Rolled back by", "Rolled back: probe: UNAVAILABLE", "✗ fail"}, 1},
		{"/rollouts/two-runs", []string{"undo: errors in the logs", "run 2", ">rollback</text>", ">undo</text>", "errors in the logs"}, 1},
	} {
		t.Run(tc.path, func(t *testing.T) {
			dom := runChromium(t, bin, "--dump-dom", srv.URL+tc.path)
			for _, w := range tc.want {
				if !strings.Contains(dom, w) {
					t.Errorf("the rendered DOM lacks %q", w)
				}
			}
			if !strings.Contains(dom, "<svg") || !strings.Contains(dom, `class="weight"`) {
				t.Errorf("the rendered DOM has no chart")
			}
			markers := regexp.MustCompile(`<(circle|path) class="verdict (pass|fail|inconclusive|error)"`).FindAllString(dom, -1)
			if len(markers) != tc.verdicts {
				t.Errorf("the chart has %d verdict markers, want %d", len(markers), tc.verdicts)
			}
			if fails := strings.Count(dom, `<path class="verdict fail"`); strings.Count(dom, `<circle class="verdict fail"`) != 0 || fails == 0 && tc.verdicts > 0 {
				t.Errorf("failed verdicts are not drawn as their own shape (%d paths)", fails)
			}
			if n := strings.Count(dom, "<script"); n != 1 {
				t.Errorf("the page carries %d scripts, want the inline refresh only", n)
			}
			screenshots(t, bin, srv.URL+tc.path)
		})
	}
}

// screenshots writes the page at 1400 and 400 CSS pixels wide into the test's artifact
// directory (go test -artifacts keeps it; -screenshot DIR names another), logs each
// file's path and checks that it is a PNG of that width.
func screenshots(t *testing.T, bin, url string) {
	dir := *screenshotDir
	if dir == "" {
		dir = t.ArtifactDir()
	}
	name := strings.Trim(strings.ReplaceAll(strings.TrimPrefix(url, "http://"), "/", "_"), "_")
	name = name[strings.Index(name, "_")+1:]
	if !strings.Contains(url[len("http://"):], "/") || strings.HasSuffix(url, "/") {
		name = "index"
	}
	for _, width := range []int{1400, 400} {
		file := filepath.Join(dir, fmt.Sprintf("%d-%s.png", width, name))
		runChromium(t, bin, "--hide-scrollbars", "--force-device-scale-factor=1",
			fmt.Sprintf("--window-size=%d,1600", width), "--screenshot="+file, url)
		f, err := os.Open(file)
		if err != nil {
			t.Fatalf("no screenshot at %d px: %v", width, err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Fatalf("screenshot %s is not a PNG: %v", file, err)
		}
		if cfg.Width != width {
			t.Errorf("screenshot %s is %d px wide, want %d", file, cfg.Width, width)
		}
		t.Logf("screenshot %d px: %s (%dx%d)", width, file, cfg.Width, cfg.Height)
	}
}
