// Package gateway is the sandbox's stand-in for Istio's ingress gateway: a gRPC proxy that
// forwards any method, unary or streaming, to the stable or the canary backend by the
// weights of the VirtualService (or GRPCRoute) at the head of a Git remote (read every second, as Argo CD
// would sync it), and counts every call in Istio's request metrics with the labels Envoy
// puts on them, so the same PromQL works on a laptop and on a mesh.
//
// Each call picks its backend at random with the route's weights, as Envoy's weighted
// clusters do; Options.Seed makes the sequence of picks repeatable.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/istiometrics"
)

// Backend is one subset's address.
type Backend struct {
	Subset string // "v1"
	Addr   string // host:port of a plaintext gRPC server
	// Service, when set, is the backend's own Service (a Gateway API route's backendRef,
	// such as "grpc-helloworld-py-v2"): its calls are counted under it rather than under
	// Options.Service.
	Service string
}

// Git says where the gateway reads its weights: the manifest at the head of Branch of URL,
// the route Ref within it.
type Git struct {
	URL      string // file://, git://, https:// ...
	Branch   string // "main" when empty
	Manifest string // "deploy/sample/rules.yaml"
	Ref      gitops.VSRef
	// CacheDir holds the gateway's own clone. Required.
	CacheDir string
}

// Options configures a Gateway.
type Options struct {
	// Listen is the gRPC address, such as "127.0.0.1:8080"; Metrics the HTTP address of
	// /metrics and /weights. Either may use port 0.
	Listen  string
	Metrics string
	Stable  Backend
	Canary  Backend
	Git     Git
	// Refresh is how often the remote is fetched; 0 means every second.
	Refresh time.Duration
	// Service and Namespace label the metrics (destination_service_name and its
	// namespace); "default" when Namespace is empty.
	Service   string
	Namespace string
	// Seed makes the random picks repeatable; 0 seeds from the clock.
	Seed uint64
	// Log receives the gateway's records; nil discards them.
	Log *slog.Logger
}

// Gateway is a running gateway. Its methods are safe for concurrent use.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	metrics *istiometrics.Metrics
	stable  *backend
	canary  *backend

	grpc    *grpc.Server
	http    *http.Server
	lis     net.Listener
	httpLis net.Listener
	repo    *gitops.Repo
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once

	mu      sync.Mutex
	rng     *rand.Rand
	current weightsAt
	fetched string // the head last fetched
	lastErr error  // why it could not be routed by; nil when it was
}

type backend struct {
	Backend
	conn *grpc.ClientConn
}

// serviceOf is the Service b's calls are counted under.
func (g *Gateway) serviceOf(b *backend) string {
	if b.Service != "" {
		return b.Service
	}
	return g.opts.Service
}

// weightsAt is the route's weights and the commit they were read from.
type weightsAt struct {
	weights rollout.Weights
	commit  string
	read    time.Time
}

// Start reads the weights at the remote's head (failing when it cannot), connects to the
// backends, and serves until Close. ctx bounds the start only.
func Start(ctx context.Context, o Options) (*Gateway, error) {
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	g := &Gateway{opts: o, log: o.Log, rng: newRand(o.Seed)}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	ok := false
	defer func() {
		if !ok {
			g.Close()
		}
	}()
	if err := g.openRepo(ctx); err != nil {
		return nil, err
	}
	if err := g.dial(); err != nil {
		return nil, err
	}
	if err := g.listen(); err != nil {
		return nil, err
	}
	ok = true
	return g, nil
}

func newRand(seed uint64) *rand.Rand {
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func (g *Gateway) dial() error {
	for _, b := range []struct {
		dst **backend
		b   Backend
	}{{&g.stable, g.opts.Stable}, {&g.canary, g.opts.Canary}} {
		conn, err := grpc.NewClient(b.b.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("gateway: backend %s at %s: %w", b.b.Subset, b.b.Addr, err)
		}
		*b.dst = &backend{Backend: b.b, conn: conn}
	}
	return nil
}

// listen starts the gRPC and HTTP servers and the Git follower.
func (g *Gateway) listen() error {
	reg := prometheus.NewRegistry()
	m, err := istiometrics.New(reg)
	if err != nil {
		return err
	}
	g.metrics = m
	for _, b := range []*backend{g.stable, g.canary} { // series at zero, so rate() sees the first call
		for _, reporter := range []string{"source", "destination"} {
			g.metrics.Touch(istiometrics.Request{Reporter: reporter, Service: g.serviceOf(b), Namespace: g.opts.Namespace, Version: b.Subset})
		}
	}
	if g.lis, err = net.Listen("tcp", g.opts.Listen); err != nil {
		return fmt.Errorf("gateway: listen: %w", err)
	}
	if g.httpLis, err = net.Listen("tcp", g.opts.Metrics); err != nil {
		return fmt.Errorf("gateway: metrics listen: %w", err)
	}
	g.grpc = grpc.NewServer(grpc.UnknownServiceHandler(g.handle), grpc.ForceServerCodec(rawCodec{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /weights", g.serveWeights)
	g.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	g.wg.Add(3)
	go func() { defer g.wg.Done(); _ = g.grpc.Serve(g.lis) }()
	go func() { defer g.wg.Done(); _ = g.http.Serve(g.httpLis) }()
	go func() { defer g.wg.Done(); g.follow(ctx) }()
	return nil
}

// Addr returns the gRPC address the gateway listens on.
func (g *Gateway) Addr() string { return g.lis.Addr().String() }

// MetricsAddr returns the HTTP address of /metrics and /weights.
func (g *Gateway) MetricsAddr() string { return g.httpLis.Addr().String() }

// Weights returns the weights the gateway routes by and the commit they were read from.
func (g *Gateway) Weights() (rollout.Weights, string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.current.weights, g.current.commit
}

// pick chooses the backend of one call, and returns the weights it was chosen by.
func (g *Gateway) pick() (*backend, weightsAt) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.current
	if g.rng.IntN(100) < w.weights.Canary {
		return g.canary, w
	}
	return g.stable, w
}

// Close stops the servers (failing calls in flight), the follower and the backend
// connections, and waits for them. It is idempotent.
func (g *Gateway) Close() error {
	var errs []error
	g.once.Do(func() {
		if g.cancel != nil {
			g.cancel()
		}
		if g.grpc != nil {
			g.grpc.Stop()
		} else if g.lis != nil {
			g.lis.Close()
		}
		if g.http != nil {
			errs = append(errs, ignoreClosed(g.http.Close()))
		} else if g.httpLis != nil {
			g.httpLis.Close()
		}
		g.wg.Wait()
		for _, b := range []*backend{g.stable, g.canary} {
			if b != nil {
				errs = append(errs, b.conn.Close())
			}
		}
		if g.repo != nil {
			errs = append(errs, g.repo.Close())
		}
	})
	return errors.Join(errs...)
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
