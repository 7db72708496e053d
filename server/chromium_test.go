package server

import (
	"context"
	"flag"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
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

func TestPageInChromium(t *testing.T) {
	bin := chromium(t)
	src := sampleSource()
	srv := httptest.NewServer(New(Options{Source: src, Now: src.now}).Handler())
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		path     string
		want     []string
		verdicts int // verdict markers in the chart(s)
	}{
		{"/", []string{"grpc-helloworld-py", "payments", "broken", "140 is outside 0..100", "in 42s"}, 15},
		{"/rollouts/grpc-helloworld-py", []string{"grpc-helloworld-py", "Progressing", "alice@laptop", "destination_version", "4f1c2a9d0e7b"}, 15},
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
			markers := regexp.MustCompile(`<circle class="verdict (pass|fail|inconclusive|error)"`).FindAllString(dom, -1)
			if len(markers) != tc.verdicts {
				t.Errorf("the chart has %d verdict markers, want %d", len(markers), tc.verdicts)
			}
			if strings.Contains(dom, "<script") {
				t.Errorf("the page carries a script")
			}
			if *screenshotDir != "" {
				name := strings.Trim(strings.ReplaceAll(tc.path, "/", "_"), "_") + ".png"
				for _, size := range []string{"1200,1400", "390,1600"} {
					file := filepath.Join(*screenshotDir, strings.ReplaceAll(size, ",", "x")+"-"+name)
					runChromium(t, bin, "--hide-scrollbars", "--window-size="+size, "--screenshot="+file, srv.URL+tc.path)
				}
			}
		})
	}
}
