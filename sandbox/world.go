// Package sandbox is canaryd's local demo: the seed tutorial's whole world on one laptop,
// with real processes on loopback. A World holds greeter v1 and v2, a bare Git remote
// seeded with the sample's manifests and a Rollout spec, the weighted gateway that follows
// the VirtualService (or, with Options.Route, the GRPCRoute) in that remote
// (sandbox/gateway), Debian's Prometheus scraping it
// every second, steady traffic through it (sandbox/traffic), and `canaryd serve` as a child
// process in gitops mode on the remote. Play runs a scenario (success, fail, revert) on a
// World and tells whether it ended as it should.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/canarydio/canaryd/deploy/monitoring"
	"github.com/canarydio/canaryd/sandbox/gateway"
	"github.com/canarydio/canaryd/sandbox/greeter"
	"github.com/canarydio/canaryd/sandbox/promserver"
	"github.com/canarydio/canaryd/sandbox/traffic"
)

// Options configures a World. Addresses may use port 0; the chosen ports are passed on.
type Options struct {
	// Workdir holds everything: remote.git, the config, data, logs. It must not hold a
	// demo already. Required.
	Workdir string
	// Gateway is the gateway's gRPC address ("127.0.0.1:8080", as in the seed) and
	// GatewayMetrics its /metrics and /weights ("127.0.0.1:0").
	Gateway        string
	GatewayMetrics string
	// Listen is canaryd's status API and page ("127.0.0.1:8090").
	Listen string
	// V1 and V2 are the greeters' addresses ("127.0.0.1:0").
	V1, V2 string
	// Rate is the traffic's calls per second; 0 means 50.
	Rate float64
	// Seed makes the gateway's picks repeatable; 0 picks at random.
	Seed uint64
	// Scenario is the one Play will run; it picks the spec's timings when Timings is zero.
	Scenario Scenario
	// Route is what the rollout steps: RouteVirtualService (when empty) or RouteGRPCRoute.
	Route string
	// Timings of the rollout spec; zero means TimingsFor(Scenario).
	Timings SpecTimings
	// Canaryd is the canaryd binary that serves; empty means this executable. NoServe
	// starts everything but canaryd serve.
	Canaryd string
	NoServe bool
	// Prometheus is the prometheus binary; empty means Debian's.
	Prometheus string
	// Log receives the world's records; nil discards them. Children's output goes to
	// WORKDIR/logs.
	Log *slog.Logger
}

// World is a running demo. Close stops it.
type World struct {
	opts    Options
	log     *slog.Logger
	Workdir string
	Remote  string // WORKDIR/remote.git
	// Sample is what the rollout steps, as Options.Route chose.
	Sample Sample
	// V1 and V2 are the greeters; V2.SetErrors turns it into a failing canary.
	V1, V2     *greeter.Server
	Gateway    *gateway.Gateway
	Prometheus *promserver.Server
	Traffic    *traffic.Generator
	// StatusURL is canaryd's status page; APIToken the token its actions need.
	StatusURL string
	APIToken  string

	addrs   []string // of v1 and v2
	serve   *child
	cancel  context.CancelFunc
	closers []func() error // in the order of starting; Close runs them backwards
	once    sync.Once
	err     error
}

// ObservedWindow is how far back the live view's split of observed replies looks.
const ObservedWindow = 2 * time.Second

// ErrWorkdirUsed reports a workdir that holds a demo already.
var ErrWorkdirUsed = errors.New("workdir already holds a demo (remote.git exists); remove it or choose another")

// Start builds the world in order (greeters, remote, gateway, Prometheus, traffic, canaryd
// serve) and returns once canaryd answers its status API. On any failure it stops what it
// started. ctx bounds the start only; the world runs until Close.
func Start(ctx context.Context, o Options) (*World, error) {
	o = withDefaults(o)
	sample, err := SampleFor(o.Route)
	if err != nil {
		return nil, err
	}
	w := &World{opts: o, log: o.Log, Workdir: o.Workdir, Remote: filepath.Join(o.Workdir, "remote.git"), Sample: sample}
	if _, err := os.Stat(w.Remote); err == nil {
		return nil, fmt.Errorf("%s: %w", o.Workdir, ErrWorkdirUsed)
	}
	for _, d := range []string{o.Workdir, filepath.Join(o.Workdir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("workdir: %w", err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	ok := false
	defer func() {
		if !ok {
			w.Close()
		}
	}()
	for _, step := range []func(context.Context) error{
		w.startGreeters, w.startGateway, w.startPrometheus,
		func(context.Context) error { return w.startTraffic(runCtx) },
		w.startServe,
	} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	ok = true
	return w, nil
}

func withDefaults(o Options) Options {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&o.Gateway, "127.0.0.1:8080")
	def(&o.GatewayMetrics, "127.0.0.1:0")
	def(&o.Listen, "127.0.0.1:8090")
	def(&o.V1, "127.0.0.1:0")
	def(&o.V2, "127.0.0.1:0")
	if o.Timings == (SpecTimings{}) {
		o.Timings = TimingsFor(o.Scenario)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// InstanceName returns a pod-like name for a version: grpc-helloworld-py-v1-<5 hex>-<5 hex>.
func InstanceName(version string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return "grpc-helloworld-py-" + version + "-" + h[:5] + "-" + h[5:]
}

func (w *World) startGreeters(context.Context) error {
	for _, g := range []struct {
		dst     **greeter.Server
		version string
		addr    string
	}{{&w.V1, "v1", w.opts.V1}, {&w.V2, "v2", w.opts.V2}} {
		srv, err := greeter.NewServer(greeter.Options{Instance: InstanceName(g.version), Reflection: true})
		if err != nil {
			return err
		}
		lis, err := net.Listen("tcp", g.addr)
		if err != nil {
			return fmt.Errorf("greeter %s: %w", g.version, err)
		}
		*g.dst = srv
		done := make(chan error, 1)
		go func() { done <- srv.Serve(lis) }()
		w.closers = append(w.closers, func() error { srv.Stop(); return <-done })
		w.log.Info("greeter serves", "version", g.version, "instance", srv.Instance(), "addr", lis.Addr().String())
		w.addrs = append(w.addrs, lis.Addr().String())
	}
	return nil
}

func (w *World) startGateway(ctx context.Context) error {
	// The remote is seeded first with the spec, which names the gateway's address; a
	// gateway on port 0 gets its port before the seed, from a listener held meanwhile. The
	// spec names no Prometheus: serve's config gives the default, once Prometheus runs.
	lis, err := net.Listen("tcp", w.opts.Gateway)
	if err != nil {
		return fmt.Errorf("gateway: %w (is another demo running?)", err)
	}
	addr := lis.Addr().String()
	spec := w.Sample.RolloutSpecPinned(addr, w.opts.Timings, w.addrs[0], w.addrs[1])
	if err := seedRemote(ctx, w.Workdir, w.Remote, w.Sample, spec); err != nil {
		lis.Close()
		return fmt.Errorf("seed %s: %w", w.Remote, err)
	}
	lis.Close()
	gw, err := gateway.Start(ctx, gateway.Options{
		Listen: addr, Metrics: w.opts.GatewayMetrics,
		Stable: gateway.Backend{Subset: "v1", Addr: w.addrs[0], Service: w.Sample.Services[0]},
		Canary: gateway.Backend{Subset: "v2", Addr: w.addrs[1], Service: w.Sample.Services[1]},
		Git: gateway.Git{
			URL: "file://" + w.Remote, Manifest: w.Sample.Manifest, Ref: w.Sample.Ref,
			CacheDir: filepath.Join(w.Workdir, "gateway-cache"),
		},
		Service: "grpc-helloworld-py", Seed: w.opts.Seed, Log: w.log,
	})
	if err != nil {
		return err
	}
	w.Gateway = gw
	w.closers = append(w.closers, gw.Close)
	return nil
}

func (w *World) startPrometheus(ctx context.Context) error {
	dir := filepath.Join(w.Workdir, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(w.Workdir, "logs", "prometheus.log"))
	if err != nil {
		return err
	}
	w.closers = append(w.closers, logf.Close)
	// Prometheus also scrapes canaryd and evaluates the alerts deploy/monitoring ships.
	rules := filepath.Join(dir, "canaryd-rules.yaml")
	if err := os.WriteFile(rules, monitoring.Rules, 0o644); err != nil {
		return err
	}
	p, err := promserver.Start(ctx, promserver.Config{
		Binary: w.opts.Prometheus, Targets: []string{w.Gateway.MetricsAddr(), w.opts.Listen},
		ScrapeInterval: time.Second, Dir: dir, Log: logf, RuleFiles: []string{rules},
	})
	if err != nil {
		return err
	}
	w.Prometheus = p
	w.closers = append(w.closers, p.Stop)
	return nil
}

func (w *World) startTraffic(ctx context.Context) error {
	g, err := traffic.New(traffic.Options{Target: w.Gateway.Addr(), Rate: w.opts.Rate, Window: ObservedWindow})
	if err != nil {
		return err
	}
	w.Traffic = g
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	w.closers = append(w.closers, func() error { cancel(); return <-done })
	return nil
}

// Close stops everything the world started, newest first: canaryd serve (its whole
// process group), the traffic, Prometheus, the gateway and the greeters, and waits for
// each. The workdir stays for inspection. It is idempotent.
func (w *World) Close() error {
	w.once.Do(func() {
		w.cancel()
		var errs []error
		for i := len(w.closers) - 1; i >= 0; i-- {
			errs = append(errs, w.closers[i]())
		}
		w.err = errors.Join(errs...)
	})
	return w.err
}
