package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures a Server.
type Options struct {
	// Source is what the server reads and acts through. Required.
	Source Source
	// Token is the bearer token operator actions must carry. Nil or empty refuses every
	// action with 403 and a message saying no token is configured. It is never logged.
	Token []byte
	// People maps the SHA-256 of a person's token to the person's name. An action with
	// such a token is recorded with that name as its actor, whatever the client says.
	People map[[32]byte]string
	// Registry is what /metrics serves; nil leaves /metrics out (404).
	Registry prometheus.Gatherer
	// Logger receives one line per refused or failed request; nil discards.
	Logger *slog.Logger
	// GitWebhook, when set, is mounted at POST /hooks/git.
	GitWebhook http.Handler
	// CommitURL links commits on the page: a URL with {sha} for the commit's hash, such as
	// https://github.com/acme/deploy/commit/{sha}. Empty: no links.
	CommitURL string
	// Pprof mounts the Go runtime's profiles at /debug/pprof/, for a caller with an
	// operator's token only. Off by default.
	Pprof bool
	// Now is the clock the page uses to say "in 12s"; nil means time.Now.
	Now func() time.Time
	// ListCacheTTL is how long GET /api/v1/rollouts may answer from its last read of the
	// Source (default DefaultListCacheTTL; negative: never). One rollout's own endpoint
	// always reads the Source.
	ListCacheTTL time.Duration
}

// DefaultListCacheTTL keeps the rollout list cheap under many pollers while it stays
// fresher than any poller's interval.
const DefaultListCacheTTL = 250 * time.Millisecond

// Server serves the status API (/api/v1/...), the status page (/ and /rollouts/{name}),
// /metrics, /healthz and /readyz. It keeps no state of its own: every request reads Source.
// It is safe for concurrent use.
type Server struct {
	src    Source
	token  []byte
	people map[[32]byte]string
	// commitURL is Options.CommitURL.
	commitURL string
	log       *slog.Logger
	now       func() time.Time
	handler   http.Handler
	list      listCache
}

// New returns a Server for opts. It panics when opts.Source is nil, a wiring mistake.
func New(opts Options) *Server {
	if opts.Source == nil {
		panic("server: Options.Source is nil")
	}
	s := &Server{src: opts.Source, token: append([]byte(nil), opts.Token...), people: opts.People, commitURL: opts.CommitURL, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.list.ttl = opts.ListCacheTTL
	if s.list.ttl == 0 {
		s.list.ttl = DefaultListCacheTTL
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/rollouts", s.listRollouts)
	mux.HandleFunc("GET /api/v1/rollouts/{name}", s.getRollout)
	mux.HandleFunc("GET /api/v1/rollouts/{name}/history", s.getHistory)
	mux.HandleFunc("POST /api/v1/rollouts/{name}/{action}", s.act)
	mux.HandleFunc("/api/", s.apiNotFound)
	mux.HandleFunc("GET /{$}", s.indexPage)
	mux.HandleFunc("GET /rollouts/{name}", s.rolloutPage)
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if opts.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	}
	if opts.GitWebhook != nil {
		mux.Handle("POST /hooks/git", opts.GitWebhook)
	}
	if opts.Pprof {
		mux.Handle("GET /debug/pprof/", s.pprofHandler())
	}
	s.handler = securityHeaders(mux)
	return s
}

// Handler returns the HTTP handler of every route.
func (s *Server) Handler() http.Handler { return s.handler }

// ServeHTTP serves r with Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// securityHeaders sets headers that keep the page self-contained: no script, nothing
// loaded from elsewhere, no framing.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// readyz answers 200 when Source.Ready returns nil, else 503 with its reason.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.src.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready: "+err.Error()+"\n")
		return
	}
	io.WriteString(w, "ok\n")
}
