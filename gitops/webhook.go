package gitops

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxPayload bounds a webhook body; push payloads of big pushes stay well below it.
const maxPayload = 5 << 20

// UnsignedInterval is how often a webhook without a secret may trigger a fetch; requests in
// between get 429. Such a request proves nothing, so all it can do is make canaryd fetch
// sooner, and not often.
const UnsignedInterval = 5 * time.Second

// Webhook returns an http.Handler for push webhooks that calls r.Trigger when a push to
// r's branch arrives. See NewWebhook.
func (r *Repo) Webhook(secret []byte) http.Handler {
	return NewWebhook(r.cfg.Branch, secret, r.Trigger, r.log)
}

// NewWebhook returns an http.Handler for GitHub, GitLab and Gitea push webhooks. It answers
// 202 and calls trigger when the payload is a push to branch; 200 for pings and pushes to
// other refs; 401 when secret is set and the request does not prove it (GitHub's
// X-Hub-Signature-256, Gitea's X-Gitea-Signature HMAC-SHA256, or GitLab's X-Gitlab-Token);
// 400 for a body that is not a push payload; 405 for anything but POST. Without a secret
// nothing is verified, and a request may trigger a fetch at most once per UnsignedInterval:
// those in between get 429 with Retry-After. trigger must not block (it only asks for a
// fetch). A nil log discards.
func NewWebhook(branch string, secret []byte, trigger func(), log *slog.Logger) http.Handler {
	return newWebhook(branch, secret, trigger, log, time.Now)
}

func newWebhook(branch string, secret []byte, trigger func(), log *slog.Logger, now func() time.Time) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	want := "refs/heads/" + branch
	limit := &unsignedLimit{now: now}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if len(secret) == 0 && !limit.allow() {
			w.Header().Set("Retry-After", strconv.Itoa(int(UnsignedInterval/time.Second)))
			http.Error(w, "too many unsigned webhooks; configure git.webhookSecretFile", http.StatusTooManyRequests)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxPayload))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if len(secret) > 0 && !authentic(req.Header, body, secret) {
			log.Warn("webhook with a bad signature", "remote_addr", req.RemoteAddr)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if ev := eventOf(req.Header); ev == "ping" {
			io.WriteString(w, "pong\n")
			return
		} else if ev != "" && ev != "push" {
			io.WriteString(w, "ignored: not a push\n")
			return
		}
		var p struct {
			Ref string `json:"ref"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Ref == "" {
			http.Error(w, "not a push payload", http.StatusBadRequest)
			return
		}
		if p.Ref != want {
			io.WriteString(w, "ignored: push to "+p.Ref+"\n")
			return
		}
		trigger()
		log.Debug("webhook push", "ref", p.Ref)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "sync triggered\n")
	})
}

// unsignedLimit lets one unsigned request through per UnsignedInterval.
type unsignedLimit struct {
	now  func() time.Time
	mu   sync.Mutex
	last time.Time
}

func (l *unsignedLimit) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < UnsignedInterval {
		return false
	}
	l.last = now
	return true
}

// eventOf returns the normalised event name of the forges' event headers ("" when none).
func eventOf(h http.Header) string {
	switch {
	case h.Get("X-GitHub-Event") != "":
		return h.Get("X-GitHub-Event")
	case h.Get("X-Gitea-Event") != "":
		return h.Get("X-Gitea-Event")
	case h.Get("X-Gitlab-Event") != "":
		if strings.EqualFold(h.Get("X-Gitlab-Event"), "Push Hook") {
			return "push"
		}
		return h.Get("X-Gitlab-Event")
	}
	return ""
}

// authentic reports whether the request proves it knows the secret.
func authentic(h http.Header, body, secret []byte) bool {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	sum := mac.Sum(nil)
	if sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256="); ok {
		got, err := hex.DecodeString(sig)
		return err == nil && hmac.Equal(got, sum)
	}
	if sig := h.Get("X-Gitea-Signature"); sig != "" {
		got, err := hex.DecodeString(sig)
		return err == nil && hmac.Equal(got, sum)
	}
	if tok := h.Get("X-Gitlab-Token"); tok != "" {
		return subtle.ConstantTimeCompare([]byte(tok), secret) == 1
	}
	return false
}
