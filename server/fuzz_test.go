package server

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode"
)

// FuzzReadAction feeds action bodies and query strings to the action parser: it either
// refuses them or returns a bounded reason and a non-empty actor without control characters.
func FuzzReadAction(f *testing.F) {
	f.Add(`{"reason": "errors in v2", "actor": "alice@host"}`, "")
	f.Add(``, "reason=fine&actor=carol")
	f.Add(`{"reason": "a\nRollout-Actor: x"}`, "actor=%0a")
	f.Add(`{"reason": 3}`, "")
	f.Add(`[]`, "reason=")
	f.Fuzz(func(t *testing.T, body, query string) {
		r := httptest.NewRequest("POST", "/api/v1/rollouts/x/pause", strings.NewReader(body))
		if q, err := url.ParseQuery(query); err == nil {
			r.URL.RawQuery = q.Encode()
		}
		req, err := readAction(r)
		if err != nil {
			return
		}
		if req.Actor == "" || len(req.Actor) > maxActorLen || len(req.Reason) > maxReasonLen {
			t.Fatalf("accepted %+v", req)
		}
		for _, s := range []string{req.Actor, req.Reason} {
			if strings.IndexFunc(s, unicode.IsControl) >= 0 || s != strings.TrimSpace(s) {
				t.Fatalf("%q keeps control characters or outer spaces", s)
			}
		}
	})
}

// FuzzPageParams checks that any limit and before the history endpoint accepts are in range.
func FuzzPageParams(f *testing.F) {
	f.Add("limit=10&before=5")
	f.Add("limit=1001")
	f.Add("before=-1&limit=+3")
	f.Fuzz(func(t *testing.T, query string) {
		r := httptest.NewRequest("GET", "/api/v1/rollouts/x/history", nil)
		r.URL.RawQuery = query
		limit, _, err := pageParams(r)
		if err == nil && (limit < 1 || limit > MaxHistoryLimit) {
			t.Fatalf("%q accepted with limit %d", query, limit)
		}
	})
}
