package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// TestPageRefreshesInPlace loads the index in headless Chromium, changes a rollout after
// the page's first look at the JSON, and lets virtual time run past two refresh periods:
// the rendered DOM shows the change, and the page itself was fetched by the script
// (Sec-Fetch-Mode other than navigate), never reloaded.
func TestPageRefreshesInPlace(t *testing.T) {
	bin := chromium(t)
	src := sampleSource()
	// No list cache: virtual time runs the refreshes within its wall-clock TTL.
	h := New(Options{Source: src, Now: src.now, ListCacheTTL: -1}).Handler()
	var (
		mu    sync.Mutex
		modes []string // Sec-Fetch-Mode of each GET /
		looks int      // GET /api/v1/rollouts
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/":
			modes = append(modes, r.Header.Get("Sec-Fetch-Mode"))
		case "/api/v1/rollouts":
			if looks++; looks == 1 {
				src.mu.Lock()
				ro := src.rollouts["grpc-helloworld-py"]
				ro.Phase, ro.Message = rollout.Paused, "paused by the test while the page was open"
				src.mu.Unlock()
			}
		}
	}))
	t.Cleanup(srv.Close)
	dom := runChromium(t, bin, "--virtual-time-budget=12000", "--dump-dom", srv.URL+"/")
	if !strings.Contains(dom, "paused by the test while the page was open") {
		t.Errorf("the page did not take the change in (JSON looks: %d, page loads %q)", looks, modes)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(modes) < 2 || modes[0] != "navigate" {
		t.Fatalf("page loads %q: want the navigation, then the script's fetch", modes)
	}
	for _, m := range modes[1:] {
		if m == "navigate" {
			t.Errorf("the page was reloaded (page loads %q)", modes)
		}
	}
	if looks < 2 {
		t.Errorf("the script looked at the JSON %d times in 12s of virtual time, want at least 2", looks)
	}
}
