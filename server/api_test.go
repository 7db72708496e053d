package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/canarydio/canaryd/rollout"
)

const testToken = "s3cret-token-never-logged"

// newTestServer starts the real handler on a loopback listener over src and returns its URL.
func newTestServer(t *testing.T, src *fakeSource, token string, log *slog.Logger) string {
	t.Helper()
	opts := Options{Source: src, Logger: log, Now: src.now}
	if token != "" {
		opts.Token = []byte(token)
	}
	srv := httptest.NewServer(New(opts).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// call does one request and returns the status and the body.
func call(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func decodeJSON[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

func TestReadAPI(t *testing.T) {
	src := sampleSource()
	url := newTestServer(t, src, testToken, nil)

	status, body := call(t, "GET", url+"/api/v1/rollouts", "", "")
	list := decodeJSON[RolloutList](t, body)
	want, _ := src.Rollouts(context.Background())
	if status != 200 {
		t.Fatalf("list: %d %s", status, body)
	}
	if diff := cmp.Diff(want, list.Rollouts); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}

	status, body = call(t, "GET", url+"/api/v1/rollouts/grpc-helloworld-py", "", "")
	one := decodeJSON[Rollout](t, body)
	if status != 200 || one.Name != "grpc-helloworld-py" || one.Weights != rollout.CanaryAt(40) || one.LastVerdict == nil || one.Step != 2 || one.Steps != 3 {
		t.Errorf("one rollout: %d %+v", status, one)
	}

	for _, tc := range []struct {
		name, query string
		status      int
		seqs        []uint64
		next        uint64
		errPart     string
	}{
		{"default", "", 200, seqRange(20, 1), 0, ""},
		{"limit", "?limit=3", 200, []uint64{20, 19, 18}, 18, ""},
		{"next page", "?limit=3&before=18", 200, []uint64{17, 16, 15}, 15, ""},
		{"last page", "?limit=5&before=3", 200, []uint64{2, 1}, 0, ""},
		{"exactly to the start", "?limit=2&before=3", 200, []uint64{2, 1}, 0, ""},
		{"limit 1000", "?limit=1000", 200, seqRange(20, 1), 0, ""},
		{"limit 0", "?limit=0", 400, nil, 0, "limit"},
		{"limit 1001", "?limit=1001", 400, nil, 0, "limit"},
		{"limit negative", "?limit=-1", 400, nil, 0, "limit"},
		{"limit not a number", "?limit=ten", 400, nil, 0, "limit"},
		{"before not a number", "?before=x", 400, nil, 0, "before"},
		{"before negative", "?before=-3", 400, nil, 0, "before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, "GET", url+"/api/v1/rollouts/grpc-helloworld-py/history"+tc.query, "", "")
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.errPart != "" {
				if e := decodeJSON[APIError](t, body); !strings.Contains(e.Error, tc.errPart) {
					t.Errorf("error %q does not name %q", e.Error, tc.errPart)
				}
				return
			}
			page := decodeJSON[HistoryPage](t, body)
			var seqs []uint64
			for _, ev := range page.Events {
				seqs = append(seqs, ev.Seq)
			}
			if diff := cmp.Diff(tc.seqs, seqs); diff != "" || page.Next != tc.next {
				t.Errorf("seqs (-want +got):\n%s\nnext %d, want %d", diff, page.Next, tc.next)
			}
		})
	}
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i >= to; i-- {
		s = append(s, i)
	}
	return s
}

func TestNotFound(t *testing.T) {
	url := newTestServer(t, sampleSource(), testToken, nil)
	for _, tc := range []struct{ method, path, body, token string }{
		{"GET", "/api/v1/rollouts/nope", "", ""},
		{"GET", "/api/v1/rollouts/nope/history", "", ""},
		{"GET", "/api/v1/rollouts/nope/history?limit=5", "", ""},
		{"POST", "/api/v1/rollouts/nope/pause", `{"reason": "x"}`, testToken},
		{"POST", "/api/v1/rollouts/grpc-helloworld-py/explode", `{"reason": "x"}`, testToken},
		{"GET", "/api/v2/things", "", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, body := call(t, tc.method, url+tc.path, tc.token, tc.body)
			if status != 404 {
				t.Fatalf("status %d, want 404: %s", status, body)
			}
			if e := decodeJSON[APIError](t, body); e.Error == "" {
				t.Errorf("no error message in %s", body)
			}
		})
	}
	if status, _ := call(t, "GET", url+"/rollouts/nope", "", ""); status != 404 {
		t.Errorf("page of an unknown rollout: %d, want 404", status)
	}
}

func TestActions(t *testing.T) {
	var logs bytes.Buffer
	src := sampleSource()
	url := newTestServer(t, src, testToken, slog.New(slog.NewTextHandler(&logs, nil)))
	act := url + "/api/v1/rollouts/grpc-helloworld-py/"
	for _, tc := range []struct {
		name, path, token, body string
		status                  int
		errPart                 string
		phase                   rollout.Phase // after the request
	}{
		{"no token", "pause", "", `{"reason": "x"}`, 401, "Bearer", rollout.Progressing},
		{"wrong token", "pause", "wrong", `{"reason": "x"}`, 403, "wrong", rollout.Progressing},
		{"token with a suffix", "pause", testToken + "x", `{"reason": "x"}`, 403, "wrong", rollout.Progressing},
		{"token prefix", "pause", testToken[:5], `{"reason": "x"}`, 403, "wrong", rollout.Progressing},
		{"bad body", "pause", testToken, `{"reason": `, 400, "body", rollout.Progressing},
		{"resume while progressing", "resume", testToken, `{"reason": "x"}`, 409, "refused", rollout.Progressing},
		{"pause", "pause", testToken, `{"reason": "look at the dashboards", "actor": "bob@pc"}`, 200, "", rollout.Paused},
		{"pause twice", "pause", testToken, `{"reason": "again"}`, 409, "refused", rollout.Paused},
		{"abort without a reason", "abort", testToken, `{}`, 400, "reason", rollout.Paused},
		{"resume, reason in the query", "resume?reason=fine&actor=carol", testToken, "", 200, "", rollout.Progressing},
		{"abort", "abort", testToken, `{"reason": "errors in v2"}`, 200, "", rollout.Aborted},
		{"retry", "retry", testToken, `{"reason": "fixed"}`, 200, "", rollout.Progressing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, "POST", act+tc.path, tc.token, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.errPart != "" {
				if e := decodeJSON[APIError](t, body); !strings.Contains(e.Error, tc.errPart) {
					t.Errorf("error %q does not say %q", e.Error, tc.errPart)
				}
			} else if res := decodeJSON[ActionResult](t, body); res.Rollout.Phase != tc.phase {
				t.Errorf("the answer says phase %s, want %s", res.Rollout.Phase, tc.phase)
			}
			if ro, _ := src.Rollout(context.Background(), "grpc-helloworld-py"); ro.Phase != tc.phase {
				t.Errorf("phase %s, want %s", ro.Phase, tc.phase)
			}
		})
	}
	evs, _ := src.History(context.Background(), "grpc-helloworld-py", 0, 4)
	type who struct {
		Kind          rollout.EventKind
		Actor, Reason string
	}
	var got []who
	for _, ev := range evs {
		got = append(got, who{ev.Kind, ev.Actor, ev.Reason})
	}
	want := []who{
		{rollout.EventStarted, "api", "fixed"},
		{rollout.EventAborted, "api", "errors in v2"},
		{rollout.EventResumed, "carol", "fine"},
		{rollout.EventPaused, "bob@pc", "look at the dashboards"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if strings.Contains(logs.String(), testToken[:8]) {
		t.Errorf("the token reached the log:\n%s", logs.String())
	}
}

func TestActionsWithoutToken(t *testing.T) {
	src := sampleSource()
	url := newTestServer(t, src, "", nil)
	for _, token := range []string{"", "anything"} {
		status, body := call(t, "POST", url+"/api/v1/rollouts/grpc-helloworld-py/pause", token, `{"reason": "x"}`)
		if e := decodeJSON[APIError](t, body); status != 403 || !strings.Contains(e.Error, "no API token is configured") {
			t.Errorf("token %q: %d %s; want 403 saying no token is configured", token, status, body)
		}
	}
	if ro, _ := src.Rollout(context.Background(), "grpc-helloworld-py"); ro.Phase != rollout.Progressing {
		t.Errorf("phase %s after refused actions", ro.Phase)
	}
}

func TestActionCleansReason(t *testing.T) {
	src := sampleSource()
	url := newTestServer(t, src, testToken, nil)
	body := `{"reason": "ok\nRollout-Actor: mallory", "actor": "eve\r\n"}`
	if status, b := call(t, "POST", url+"/api/v1/rollouts/grpc-helloworld-py/pause", testToken, body); status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	evs, _ := src.History(context.Background(), "grpc-helloworld-py", 0, 1)
	if got := evs[0].Reason + "|" + evs[0].Actor; got != "ok Rollout-Actor: mallory|eve" {
		t.Errorf("reason|actor = %q; control characters must become spaces", got)
	}
	long := `{"reason": "` + strings.Repeat("x", maxReasonLen+1) + `"}`
	if status, _ := call(t, "POST", url+"/api/v1/rollouts/grpc-helloworld-py/resume", testToken, long); status != 400 {
		t.Errorf("an overlong reason: %d, want 400", status)
	}
}

// failingSource fails every read with an internal error.
type failingSource struct{ fakeSource }

var errDisk = errors.New("disk on fire")

func (*failingSource) Rollouts(context.Context) ([]Rollout, error) { return nil, errDisk }

func TestInternalError(t *testing.T) {
	srv := httptest.NewServer(New(Options{Source: &failingSource{}}).Handler())
	t.Cleanup(srv.Close)
	status, body := call(t, "GET", srv.URL+"/api/v1/rollouts", "", "")
	if e := decodeJSON[APIError](t, body); status != 500 || !strings.Contains(e.Error, "disk on fire") {
		t.Errorf("%d %s; want 500 with the error", status, body)
	}
	if status, _ := call(t, "GET", srv.URL+"/", "", ""); status != 500 {
		t.Errorf("page: %d, want 500", status)
	}
}

func TestHealth(t *testing.T) {
	src := sampleSource()
	url := newTestServer(t, src, "", nil)
	if status, body := call(t, "GET", url+"/healthz", "", ""); status != 200 || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", status, body)
	}
	if status, body := call(t, "GET", url+"/readyz", "", ""); status != 200 {
		t.Errorf("readyz when ready: %d %q", status, body)
	}
	src.mu.Lock()
	src.ready = errors.New("repo not fetched yet")
	src.mu.Unlock()
	if status, body := call(t, "GET", url+"/readyz", "", ""); status != 503 || !strings.Contains(string(body), "repo not fetched yet") {
		t.Errorf("readyz when not ready: %d %q", status, body)
	}
}

func TestListCache(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ttl       time.Duration
		wantStale bool
	}{
		{"cached", time.Hour, true},
		{"not cached", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := sampleSource()
			srv := httptest.NewServer(New(Options{Source: src, Token: []byte(testToken), ListCacheTTL: tc.ttl}).Handler())
			t.Cleanup(srv.Close)
			phase := func() rollout.Phase {
				_, body := call(t, "GET", srv.URL+"/api/v1/rollouts", "", "")
				return decodeJSON[RolloutList](t, body).Rollouts[1].Phase
			}
			if p := phase(); p != rollout.Progressing {
				t.Fatalf("phase %s", p)
			}
			src.mu.Lock()
			src.rollouts["grpc-helloworld-py"].Phase = rollout.Overridden // behind the server's back
			src.mu.Unlock()
			if stale := phase() == rollout.Progressing; stale != tc.wantStale {
				t.Errorf("stale = %v, want %v", stale, tc.wantStale)
			}
			// The rollout's own endpoint always reads the Source.
			_, body := call(t, "GET", srv.URL+"/api/v1/rollouts/grpc-helloworld-py", "", "")
			if p := decodeJSON[Rollout](t, body).Phase; p != rollout.Overridden {
				t.Errorf("one rollout: phase %s, want Overridden", p)
			}
			// An action through the server drops the cached list.
			if status, b := call(t, "POST", srv.URL+"/api/v1/rollouts/grpc-helloworld-py/resume", testToken, `{"reason": "go"}`); status != 200 {
				t.Fatalf("resume: %d %s", status, b)
			}
			if p := phase(); p != rollout.Progressing {
				t.Errorf("after resume the list says %s", p)
			}
		})
	}
}

func TestListCacheSharesOneLoad(t *testing.T) {
	c := listCache{ttl: time.Hour}
	var loads atomic.Int32
	release := make(chan struct{})
	load := func() (*encodedList, error) {
		loads.Add(1)
		<-release
		return &encodedList{plain: []byte("list")}, nil
	}
	var wg sync.WaitGroup
	results := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			b, err := c.get(load)
			if err != nil {
				t.Error(err)
			}
			results <- string(b.plain)
		})
	}
	// Release the load once some caller runs it; the others wait for it.
	for loads.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		if r != "list" {
			t.Errorf("a caller got %q", r)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("%d loads for 20 concurrent callers, want 1", n)
	}
	c.drop()
	if b, _ := c.get(func() (*encodedList, error) { loads.Add(1); return &encodedList{plain: []byte("new")}, nil }); string(b.plain) != "new" || loads.Load() != 2 {
		t.Errorf("after drop: %q after %d loads", b.plain, loads.Load())
	}
	if _, err := c.get(func() (*encodedList, error) { return nil, errDisk }); err != nil {
		t.Errorf("a fresh body was not served: %v", err)
	}
}

func TestListGzip(t *testing.T) {
	url := newTestServer(t, sampleSource(), "", nil)
	get := func(enc string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", url+"/api/v1/rollouts", nil)
		req.Header.Set("Accept-Encoding", enc) // set by hand: the transport then leaves the body alone
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, plain := get("identity")
	if resp.Header.Get("Content-Encoding") != "" || decodeJSON[RolloutList](t, plain).Rollouts == nil {
		t.Fatalf("identity: %v %s", resp.Header, plain)
	}
	for _, enc := range []string{"gzip", "br, gzip;q=0.5", "GZIP"} {
		resp, body := get(enc)
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: Content-Encoding %q", enc, resp.Header.Get("Content-Encoding"))
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		unzipped, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(unzipped, plain) {
			t.Errorf("%s: the gzipped list differs from the plain one (%v)", enc, err)
		}
	}
	if resp, _ := get("gzip;q=0"); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 was answered with gzip")
	}
}
