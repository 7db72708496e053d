package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/canarydio/canaryd/rollout"
)

// History paging: the default page size and the largest one a request may ask for.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 1000
)

// Actions are the operator actions POST /api/v1/rollouts/{name}/{action} accepts.
var Actions = []string{"pause", "resume", "promote", "abort", "retry", "undo"}

// PromoteFull is the action a promote with "full" asks the Source for: all the way to the
// last step, where a plain promote takes the next step.
const PromoteFull = "promote-full"

// Limits on what an action request may carry.
const (
	maxActionBody = 64 << 10
	maxReasonLen  = 1000
	maxActorLen   = 200
)

// RolloutList is the body of GET /api/v1/rollouts.
type RolloutList struct {
	Rollouts []Rollout `json:"rollouts"`
	// Actions is "enabled" when operator actions are accepted (with the bearer token), or
	// "disabled" when no API token is configured and every action is refused.
	Actions string `json:"actions"`
}

// Values of RolloutList.Actions.
const (
	ActionsEnabled  = "enabled"
	ActionsDisabled = "disabled"
)

// HistoryPage is the body of GET /api/v1/rollouts/{name}/history: events newest first.
// Next, when not zero, is the before= value of the following (older) page.
type HistoryPage struct {
	Rollout string          `json:"rollout"`
	Events  []rollout.Event `json:"events"`
	Next    uint64          `json:"next,omitempty"`
}

// ActionRequest is the JSON body of an action. Reason and Actor may also come as query
// parameters; the body wins. Actor defaults to "api". Full (query full=true) makes a
// promote go to the last step at once; other actions refuse it.
type ActionRequest struct {
	Reason string `json:"reason"`
	Actor  string `json:"actor,omitempty"`
	Full   bool   `json:"full,omitempty"`
}

// ActionResult is the body of a successful action: the rollout as it is afterwards.
type ActionResult struct {
	Action  string  `json:"action"`
	Actor   string  `json:"actor"`
	Rollout Rollout `json:"rollout"`
}

// APIError is the body of every error response of the API.
type APIError struct {
	Error string `json:"error"`
}

// actions says whether operator actions are accepted.
func (s *Server) actions() string {
	if len(s.token) == 0 && len(s.people) == 0 {
		return ActionsDisabled
	}
	return ActionsEnabled
}

// listRollouts answers GET /api/v1/rollouts. The encoded list is shared for up to
// Options.ListCacheTTL, so that many pollers cost one read of the Source and one encoding;
// an action through this server drops it.
func (s *Server) listRollouts(w http.ResponseWriter, r *http.Request) {
	body, err := s.list.get(func() (*encodedList, error) {
		// The read is shared: one client going away must not fail it for the others.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
		defer cancel()
		rs, err := s.src.Rollouts(ctx)
		if err != nil {
			return nil, err
		}
		if rs == nil {
			rs = []Rollout{}
		}
		return newEncodedList(RolloutList{Rollouts: rs, Actions: s.actions()})
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Vary", "Accept-Encoding")
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.Itoa(len(body.gzip)))
		w.Write(body.gzip)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body.plain)))
	w.Write(body.plain)
}

// encodedList is the rollout list as JSON, plain and gzipped: a thousand rollouts with
// their last verdicts are about a megabyte, which compresses tenfold.
type encodedList struct{ plain, gzip []byte }

func newEncodedList(l RolloutList) (*encodedList, error) {
	plain, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	plain = append(plain, '\n')
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	zw.Write(plain)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &encodedList{plain: plain, gzip: buf.Bytes()}, nil
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// listCache holds the last encoded rollout list. While a fresh one is being loaded, callers
// get the previous one, so only the first request after start or after drop waits.
type listCache struct {
	ttl      time.Duration // <= 0: no caching
	mu       sync.Mutex
	body     *encodedList
	at       time.Time
	gen      uint64        // bumped by drop; a load started before it is not kept
	inflight chan struct{} // closed when the load in flight ends
}

// get returns the cached body while it is fresh or while another caller loads a fresh one;
// otherwise it calls load and keeps what it returns. Errors are not kept.
func (c *listCache) get(load func() (*encodedList, error)) (*encodedList, error) {
	if c.ttl <= 0 {
		return load()
	}
	c.mu.Lock()
	if c.body != nil && (time.Since(c.at) < c.ttl || c.inflight != nil) {
		body := c.body
		c.mu.Unlock()
		return body, nil
	}
	if ch := c.inflight; ch != nil { // nothing to serve yet: wait for that load
		c.mu.Unlock()
		<-ch
		return c.get(load)
	}
	ch, gen := make(chan struct{}), c.gen
	c.inflight = ch
	c.mu.Unlock()
	body, err := load()
	c.mu.Lock()
	c.inflight = nil
	if err == nil && gen == c.gen {
		c.body, c.at = body, time.Now()
	}
	c.mu.Unlock()
	close(ch)
	return body, err
}

// drop forgets the cached body, so that the next request reads the Source.
func (c *listCache) drop() {
	c.mu.Lock()
	c.body = nil
	c.gen++
	c.mu.Unlock()
}

func (s *Server) getRollout(w http.ResponseWriter, r *http.Request) {
	ro, err := s.src.Rollout(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ro)
}

func (s *Server) getHistory(w http.ResponseWriter, r *http.Request) {
	limit, before, err := pageParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	name := r.PathValue("name")
	evs, err := s.src.History(r.Context(), name, before, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page := HistoryPage{Rollout: name, Events: evs}
	if page.Events == nil {
		page.Events = []rollout.Event{}
	}
	if len(evs) == limit && evs[len(evs)-1].Seq > 1 {
		page.Next = evs[len(evs)-1].Seq
	}
	writeJSON(w, http.StatusOK, page)
}

// pageParams reads limit (1..MaxHistoryLimit, default DefaultHistoryLimit) and before (a
// Seq; 0 or absent: from the newest) from the query.
func pageParams(r *http.Request) (limit int, before uint64, err error) {
	q := r.URL.Query()
	limit = DefaultHistoryLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxHistoryLimit {
			return 0, 0, fmt.Errorf("limit %q is not a number in 1..%d", v, MaxHistoryLimit)
		}
		limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("before %q is not an event sequence number", v)
		}
		before = n
	}
	return limit, before, nil
}

func (s *Server) apiNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path))
}

// act carries out an operator action. Order of refusals: 403 when no token is configured,
// 401 without a bearer token, 403 with a wrong one, 404 for an unknown action or rollout,
// 400 for a bad body, 409 when the phase refuses the action.
func (s *Server) act(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	status, msg, person := s.authorize(r)
	if status != 0 {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="canaryd"`)
		}
		s.log.Warn("action refused", "rollout", name, "action", action, "status", status, "remote", r.RemoteAddr)
		writeError(w, status, msg)
		return
	}
	if !isAction(action) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown action %q (one of %s)", action, strings.Join(Actions, ", ")))
		return
	}
	req, err := readAction(r)
	err = checkAction(action, req, err)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if person != "" {
		req.Actor = person // a per-person token says who acts; the client cannot
	}
	asked := action
	if req.Full {
		asked = PromoteFull
	}
	err = s.src.Act(r.Context(), name, asked, req.Actor, req.Reason)
	s.list.drop()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("action", "rollout", name, "action", action, "actor", req.Actor, "reason", req.Reason)
	ro, err := s.src.Rollout(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ActionResult{Action: action, Actor: req.Actor, Rollout: ro})
}

// authorize returns 0 when r carries the configured bearer token or a person's token, else
// the status and message to refuse it with; person is the token's owner for a person's
// token. The comparison with the shared token takes the same time for every wrong token
// of a given length (a person's token is looked up by its SHA-256), and the message never
// echoes the token.
func (s *Server) authorize(r *http.Request) (status int, msg, person string) {
	if len(s.token) == 0 && len(s.people) == 0 {
		return http.StatusForbidden, "actions are disabled: no API token is configured (api.tokenFile)", ""
	}
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return http.StatusUnauthorized, "actions need an Authorization: Bearer <token> header", ""
	}
	if name, ok := s.people[sha256.Sum256([]byte(tok))]; ok {
		return 0, "", name
	}
	if len(s.token) == 0 || subtle.ConstantTimeCompare([]byte(tok), s.token) != 1 {
		return http.StatusForbidden, "the bearer token is wrong", ""
	}
	return 0, "", ""
}

// checkAction returns err, or else why req does not fit action: abort and undo need a
// reason, and only a promote may be full.
func checkAction(action string, req ActionRequest, err error) error {
	switch {
	case err != nil:
		return err
	case (action == "abort" || action == "undo") && req.Reason == "":
		return fmt.Errorf("%s needs a reason", action)
	case req.Full && action != "promote":
		return fmt.Errorf("full applies to promote only, not to %s", action)
	}
	return nil
}

func isAction(a string) bool {
	for _, x := range Actions {
		if a == x {
			return true
		}
	}
	return false
}

// readAction reads the reason and the actor from the JSON body, falling back to the query.
func readAction(r *http.Request) (ActionRequest, error) {
	q := r.URL.Query()
	req := ActionRequest{Reason: q.Get("reason"), Actor: q.Get("actor")}
	if f := q.Get("full"); f != "" {
		full, err := strconv.ParseBool(f)
		if err != nil {
			return req, fmt.Errorf("query full=%q is not true or false", f)
		}
		req.Full = full
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxActionBody+1))
	if err != nil {
		return req, fmt.Errorf("read body: %v", err)
	}
	if len(body) > maxActionBody {
		return req, fmt.Errorf("body is larger than %d bytes", maxActionBody)
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		var b ActionRequest
		if err := json.Unmarshal(body, &b); err != nil {
			return req, fmt.Errorf("body is not {\"reason\": \"...\", \"actor\": \"...\"}: %v", err)
		}
		if b.Reason != "" {
			req.Reason = b.Reason
		}
		if b.Actor != "" {
			req.Actor = b.Actor
		}
		req.Full = req.Full || b.Full
	}
	req.Reason, req.Actor = clean(req.Reason), clean(req.Actor)
	switch {
	case len(req.Reason) > maxReasonLen:
		return req, fmt.Errorf("reason is longer than %d bytes", maxReasonLen)
	case len(req.Actor) > maxActorLen:
		return req, fmt.Errorf("actor is longer than %d bytes", maxActorLen)
	case req.Actor == "":
		req.Actor = "api"
	}
	return req, nil
}

// clean trims s and turns control characters (newlines included) into spaces, so that a
// reason cannot forge a commit trailer or a log line.
func clean(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
}

// fail maps a Source error to a status: ErrNotFound 404, ErrRefused 409, ErrNotLeader 503, a cancelled
// request nothing, anything else 500 (logged).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("rollout %q: %v", r.PathValue("name"), err))
	case errors.Is(err, ErrRefused):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrUnavailable):
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case r.Context().Err() != nil:
		// The client is gone; nobody reads the answer.
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, APIError{Error: msg})
}
