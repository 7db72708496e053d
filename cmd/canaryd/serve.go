package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/canarydio/canaryd/analysis"
	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
	"github.com/canarydio/canaryd/store"
)

var (
	_ controller.Store     = (*store.DB)(nil)
	_ controller.Repo      = (*gitops.Repo)(nil)
	_ controller.Gates     = (*analysis.Gates)(nil)
	_ controller.Router    = (*istio.Router)(nil)
	_ controller.Converger = (*istio.Router)(nil)
	_ controller.Converger = routers{}
	_ controller.StepGates = (*analysis.Gates)(nil)
	_ controller.StepGates = countedGates{}
)

func newServeCmd() *cobra.Command {
	var configPath, logLevel string
	cmd := &cobra.Command{
		Use:   "serve --config canaryd.yaml",
		Short: "Run the daemon: rollouts from Git, the status API and page, /metrics",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if configPath == "" {
				return usageError{errors.New("serve: --config is required")}
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("serve: --log-level: %v", err)}
			}
			log := slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			slog.SetDefault(log)
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, log)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "the daemon's configuration file")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// serve runs the daemon until ctx ends: it opens the store and the repo, loads the specs,
// and runs the controller, the Git watch and the HTTP server in one errgroup.
func serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, "canaryd.db"), store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := server.NewMetrics(reg)
	if err != nil {
		return err
	}
	metrics.SetBuild(buildVersion())
	anonymousIfEmpty(cfg, log)
	gcfg := gitConfig(cfg, log)
	gcfg.OnReplay = metrics.PushReplayed
	repo, err := gitops.Open(ctx, gcfg)
	if err != nil {
		return err
	}
	defer repo.Close()
	gates := analysis.New(analysis.Options{DefaultPrometheus: cfg.Prometheus.Address, Logger: log, Egress: cfg.egress})
	defer gates.Close()
	d := &daemon{cfg: cfg, log: log, db: db, repo: repo, metrics: metrics, specs: &specCache{}}
	if d.notify, err = newNotifier(cfg.Notify, reg, log); err != nil {
		return err
	}
	d.notify.historyTo(db.Append, log)
	opts := controller.Options{
		Store: observedStore{db, d, metrics}, Repo: timedRepo{repo, metrics, d}, Gates: countedGates{gates, metrics},
		Logger: log, Hook: stepHooks(metrics, crashHook(log)), Identity: identity(),
	}
	var kube *rest.Config
	if k := cfg.Kubernetes; k != nil {
		klog.SetSlogLogger(log.With("component", "client-go")) // leader election and client-go log here
		if kube, err = restConfig(k.Kubeconfig); err != nil {
			return err
		}
		router, err := newRouters(kube, k.QPS, k.Burst, log)
		if err != nil {
			return err
		}
		opts.MaxApplies = k.MaxApplies
		if k.Mode == "apply" {
			opts.Router = router
		} else { // gitops: read the cluster, never write it; bake once it carries a step
			opts.Converger, opts.ConvergeTimeout = router, k.ConvergeTimeout.Duration
		}
	}
	d.ctrl = controller.New(opts)
	token, err := readToken(cfg.API.TokenFile)
	if err != nil {
		return err
	}
	people, err := readPeople(cfg.API.TokensFile)
	if err != nil {
		return err
	}
	if len(token) == 0 && len(people) == 0 {
		log.Warn("operator actions disabled: no api token", "tokenFile", cfg.API.TokenFile)
	}
	if err := d.loadSpecs(ctx); err != nil {
		return err
	}
	d.self.Store(identity())
	d.leading.Store(cfg.Kubernetes == nil || !cfg.Kubernetes.LeaderElection.Enabled)
	if !d.leading.Load() {
		d.follow(d.observeAll())
	}
	d.fetched.Store(true)
	d.fetchedAt.Store(time.Now().UnixNano())
	hookSecret, err := readSecret("git.webhookSecretFile", cfg.Git.WebhookSecretFile)
	if err != nil {
		return err
	}
	if hookSecret == nil {
		log.Warn("git webhook without a secret: it only triggers a fetch, rate-limited", "field", "git.webhookSecretFile")
	}
	srv := server.New(server.Options{Source: source{d}, Token: token, People: people, CommitURL: cfg.Git.CommitURL, Registry: reg, Logger: log, GitWebhook: repo.Webhook(hookSecret), Pprof: cfg.API.Pprof})
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return listen(ctx, cfg.Listen, srv, log, cfg.API.TLS) })
	g.Go(func() error { return d.notify.run(ctx) })
	g.Go(func() error { return act(ctx, cfg, kube, d, metrics, log) })
	g.Go(func() error { return db.RunRetention(ctx, retention(cfg), time.Hour, nil, log) })
	g.Go(func() error {
		// Every replica fetches: the leader to see people's changes, a follower to keep
		// its read view current.
		err := d.repo.Watch(ctx, cfg.Git.PollInterval.Duration, func(chs []rollout.GitChange, err error) {
			d.onSync(ctx, chs, err)
		})
		if ctx.Err() != nil {
			return nil
		}
		return err
	})
	log.Info("canaryd serving", "listen", cfg.Listen, "repo", repo.URL(), "branch", cfg.Git.Branch, "mode", mode(cfg))
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// act runs what only the leader may do: the controller. With leader election on, it runs
// it only while this replica holds the lease, after a fetch, so that every rollout's state
// is re-derived from the newest Git before anything moves.
func act(ctx context.Context, cfg *Config, kube *rest.Config, d *daemon, m *server.Metrics, log *slog.Logger) error {
	run := func(ctx context.Context) error {
		if err := d.catchUp(ctx); err != nil {
			return err
		}
		d.leading.Store(true)
		defer d.leading.Store(false)
		d.recordInvalid("") // what the specs read while following could not record
		m.SetLeader(true)
		defer m.SetLeader(false)
		err := d.ctrl.Run(ctx)
		if ctx.Err() != nil && (errors.Is(err, context.Canceled) || err == nil) {
			return nil
		}
		return err
	}
	k := cfg.Kubernetes
	if k == nil || !k.LeaderElection.Enabled {
		return run(ctx)
	}
	le := k.LeaderElection
	// Elect returns an error wrapping istio.ErrLeadershipLost when the lease is lost: serve
	// then exits (fail-stop) and restarts as a follower.
	return istio.Elect(ctx, kube, istio.LeaseOptions{Namespace: le.Namespace, Name: le.Name,
		Identity: identity(), Logger: log, LeaseDuration: le.LeaseDuration.Duration,
		RenewDeadline: le.RenewDeadline.Duration, RetryPeriod: le.RetryPeriod.Duration,
		OnNewLeader: func(id string) { d.leader.Store(id) }}, run)
}

// identity names this replica: the pod's name (set by deploy/canaryd), else host and pid.
func identity() string {
	if id := os.Getenv("POD_NAME"); id != "" {
		return id
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// catchUp fetches until it succeeds before a new leader moves anything: a state derived
// from a stale cache would take the old leader's last commits for someone else's.
func (d *daemon) catchUp(ctx context.Context) error {
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		fctx, cancel := context.WithTimeout(ctx, time.Minute)
		chs, err := d.repo.Sync(fctx)
		cancel()
		if err == nil || len(chs) > 0 {
			if lerr := d.loadSpecs(ctx); lerr != nil {
				d.log.Warn("reload specs", "err", lerr)
			}
			return nil
		}
		d.log.Warn("fetch before leading", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// listen serves the HTTP API until ctx ends, then shuts it down gracefully. With tls's
// files set it serves HTTPS (TLS 1.2 or later) only.
func listen(ctx context.Context, addr string, h http.Handler, log *slog.Logger, tlsFiles TLSConfig) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	errc := make(chan error, 1)
	go func() {
		if tlsFiles.CertFile != "" {
			errc <- hs.ServeTLS(ln, tlsFiles.CertFile, tlsFiles.KeyFile)
			return
		}
		errc <- hs.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	<-errc
	return nil
}

func mode(cfg *Config) string {
	if cfg.Kubernetes == nil {
		return "gitops (no cluster)"
	}
	return cfg.Kubernetes.Mode
}

func gitConfig(cfg *Config, log *slog.Logger) gitops.Config {
	a := cfg.Git.Auth
	return gitops.Config{
		URL: cfg.Git.URL, Branch: cfg.Git.Branch, Dir: filepath.Join(cfg.DataDir, "git"),
		Auth: gitops.Auth{
			TokenFile: a.TokenFile, PasswordFile: a.PasswordFile, Username: a.Username, CABundleFile: a.CABundleFile,
			SSHKeyFile: a.SSHKeyFile, SSHKeyPassphraseFile: a.SSHKeyPassphraseFile, KnownHostsFile: a.KnownHostsFile,
		},
		Author:         gitops.Signature{Name: cfg.Git.Author.Name, Email: cfg.Git.Author.Email},
		Committer:      gitops.Signature{Name: cfg.Git.Committer.Name, Email: cfg.Git.Committer.Email},
		SigningKeyFile: cfg.Git.SigningKeyFile, Log: log, BatchWindow: batchWindow(cfg.Git.BatchWindow.Duration),
		FetchTimeout: cfg.Git.Timeout.Duration, PushTimeout: cfg.Git.Timeout.Duration,
	}
}

// batchWindow is the configured window as gitops takes it, where 0 means its default.
func batchWindow(d time.Duration) time.Duration {
	if d == 0 {
		return -1 // no wait
	}
	return d
}

// restConfig finds the cluster: the kubeconfig named, else in-cluster, else $KUBECONFIG.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, nil
		}
		kubeconfig = os.Getenv("KUBECONFIG")
		if kubeconfig == "" {
			return nil, errors.New("kubernetes: not in a cluster; set kubernetes.kubeconfig or $KUBECONFIG")
		}
	}
	c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: kubeconfig %s: %w", kubeconfig, err)
	}
	return c, nil
}

// readToken reads the API token. No file configured, or an empty one (as deploy/canaryd
// ships its Secret), returns nil: operator actions are then refused. A file that is
// configured but cannot be read is an error.
func readToken(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api token: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return nil, nil
	}
	return []byte(tok), nil
}

// anonymousIfEmpty drops git.auth.tokenFile when the file holds nothing (an empty Secret):
// the repo is then read anonymously, and pushes fail until a token is set. A missing file
// is left for the Git adapter to report.
func anonymousIfEmpty(cfg *Config, log *slog.Logger) {
	path := cfg.Git.Auth.TokenFile
	if path == "" {
		return
	}
	if data, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(data)) == "" {
		log.Warn("git token file is empty: reading the repo anonymously", "tokenFile", path)
		cfg.Git.Auth.TokenFile = ""
	}
}

// stepHooks times each step from its intent to its recorded result, then calls next.
func stepHooks(m *server.Metrics, next func(string, rollout.Move)) func(string, rollout.Move) {
	var mu sync.Mutex
	started := map[string]time.Time{}
	key := func(mv rollout.Move) string { return fmt.Sprint(mv.Run, mv.Kind, mv.Weights, mv.Since.UnixNano()) }
	return func(point string, mv rollout.Move) {
		mu.Lock()
		switch point {
		case "intent":
			started[key(mv)] = time.Now()
		case "recorded":
			if t, ok := started[key(mv)]; ok {
				m.ObserveStep(time.Since(t))
				delete(started, key(mv))
			}
		}
		mu.Unlock()
		if next != nil {
			next(point, mv)
		}
	}
}
