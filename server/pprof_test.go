package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPprofNeedsAToken: /debug/pprof/ is absent unless enabled, and when enabled it
// serves profiles only to a caller with the operator's token.
func TestPprofNeedsAToken(t *testing.T) {
	get := func(srv *httptest.Server, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	off := httptest.NewServer(New(Options{Source: sampleSource(), Token: []byte(testToken)}).Handler())
	defer off.Close()
	if code, _ := get(off, "/debug/pprof/", testToken); code != http.StatusNotFound {
		t.Errorf("pprof not enabled: %d, want 404", code)
	}
	on := httptest.NewServer(New(Options{Source: sampleSource(), Token: []byte(testToken), Pprof: true}).Handler())
	defer on.Close()
	for _, tc := range []struct {
		token string
		code  int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusForbidden}, {testToken, http.StatusOK}} {
		code, body := get(on, "/debug/pprof/goroutine?debug=1", tc.token)
		if code != tc.code {
			t.Errorf("goroutine profile with token %q: %d, want %d", tc.token, code, tc.code)
		}
		if code == http.StatusOK && !strings.Contains(body, "goroutine profile:") {
			t.Errorf("goroutine profile with the token is not one:\n%.200s", body)
		}
		if code != http.StatusOK && strings.Contains(body, "goroutine") {
			t.Errorf("a refused caller got a profile:\n%.200s", body)
		}
	}
}
