package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/canarydio/canaryd/sandbox"
	"github.com/canarydio/canaryd/sandbox/promserver"
)

// demoFlags are canaryd demo's flags.
type demoFlags struct {
	scenario       string
	route          string
	untilDone      bool
	workdir        string
	gateway        string
	gatewayMetrics string
	listen         string
	v1, v2         string
	rate           float64
	seed           uint64
	timeout        time.Duration
	prometheus     string
	canaryd        string
}

func newDemoCmd() *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo [--scenario success|fail|revert] [--route virtualservice|grpcroute] [--until-done]",
		Short: "Play the seed tutorial on this machine: greeters, a gateway, Git, Prometheus and canaryd serve",
		Long: "demo starts greeter v1 and v2, a bare Git remote seeded with the sample's manifests and a\n" +
			"Rollout spec, a gRPC gateway on " + "127.0.0.1:8080 that routes by the VirtualService in that remote and\n" +
			"exports Istio's metrics, Prometheus scraping it, steady traffic, and canaryd serve in gitops mode;\n" +
			"then it plays a scenario and shows what happens. Everything lives under --workdir, which is kept.\n\n" +
			"Scenarios: success (a healthy v2 goes 0 → 40 → 100), fail (v2 fails 20% of calls from the 40% step: rolled\n" +
			"back at 40), revert (a person reverts the 40% commit: canaryd is overridden and follows Git).\n" +
			"With --route grpcroute the same story plays on a Gateway API GRPCRoute (deploy/sample-gateway-api:\n" +
			"a Gateway listening on 8080, the Services grpc-helloworld-py-v1 and -v2) that the gateway follows.\n" +
			"With --until-done it exits 0 when the scenario ended as it should and 1 otherwise; without it,\n" +
			"the world keeps running after the summary until Ctrl-C. Ctrl-C stops everything at any moment.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			sc, err := sandbox.ParseScenario(f.scenario)
			if err != nil {
				return usageError{err}
			}
			if _, err := sandbox.SampleFor(f.route); err != nil {
				return usageError{fmt.Errorf("demo: --route: %w", err)}
			}
			return runDemo(c.Context(), c.OutOrStdout(), sc, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "success", "success, fail or revert")
	fl.StringVar(&f.route, "route", sandbox.RouteVirtualService, "what the rollout steps: virtualservice or grpcroute")
	fl.BoolVar(&f.untilDone, "until-done", false, "exit when the scenario ends: 0 when it ended as it should, 1 otherwise")
	fl.StringVar(&f.workdir, "workdir", "", "where the demo keeps everything (default: a new temporary directory)")
	fl.StringVar(&f.gateway, "gateway", "127.0.0.1:8080", "the gateway's gRPC address")
	fl.StringVar(&f.gatewayMetrics, "gateway-metrics", "127.0.0.1:0", "the gateway's /metrics and /weights address")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8090", "canaryd's status API and page")
	fl.StringVar(&f.v1, "v1", "127.0.0.1:0", "greeter v1's address")
	fl.StringVar(&f.v2, "v2", "127.0.0.1:0", "greeter v2's address")
	fl.Float64Var(&f.rate, "rate", 50, "calls per second through the gateway (0: none)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the gateway's weighted picks (0: random)")
	fl.DurationVar(&f.timeout, "timeout", 3*time.Minute, "how long the scenario may take")
	fl.StringVar(&f.prometheus, "prometheus", "", "the prometheus binary (default: Debian's /usr/bin/prometheus, then $PATH)")
	fl.StringVar(&f.canaryd, "canaryd", "", "the canaryd binary to serve with (default: this one)")
	_ = fl.MarkHidden("canaryd")
	return cmd
}

// errNoPrometheus is the one line the demo prints when Prometheus is missing.
var errNoPrometheus = errors.New("demo needs Prometheus: install it with `sudo apt-get install prometheus` " +
	"(Debian/Ubuntu; or run `make demo` as root), or pass --prometheus PATH")

func runDemo(parent context.Context, out io.Writer, sc sandbox.Scenario, f demoFlags) error {
	if f.prometheus == "" {
		if _, err := promserver.Binary(); err != nil {
			return errNoPrometheus
		}
	}
	workdir, err := demoWorkdir(f.workdir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // a second Ctrl-C kills at once; the children die with us
	logf, err := os.Create(filepath.Join(workdir, "demo.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(out, "canaryd demo: starting the world in %s (logs in %s)\n", workdir, filepath.Join(workdir, "logs"))
	w, err := sandbox.Start(ctx, sandbox.Options{
		Workdir: workdir, Scenario: sc, Route: f.route, Gateway: f.gateway, GatewayMetrics: f.gatewayMetrics, Listen: f.listen, V1: f.v1, V2: f.v2,
		Rate: f.rate, Seed: f.seed, Canaryd: f.canaryd, Prometheus: f.prometheus,
		Log: slog.New(slog.NewTextHandler(logf, nil)),
	})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(out, "canaryd demo: interrupted; everything is stopped")
			return exitError{exitFailure}
		}
		return fmt.Errorf("demo: %w", err)
	}
	defer w.Close()
	if f.rate == 0 {
		w.Traffic.SetPaused(true) // --rate 0: no traffic at all, not the default rate
	}
	fmt.Fprintf(out, "gateway %s (as the seed's ingress) · status page %s · Prometheus %s\n",
		w.Gateway.Addr(), w.StatusURL, w.Prometheus.URL)
	fmt.Fprintf(out, "on-call commands: export %s=%s %s=%s\n", envServer, strings.TrimSuffix(w.StatusURL, "/"),
		envTokenFile, filepath.Join(w.Workdir, "api-token"))
	return playDemo(ctx, out, w, sc, f)
}

func playDemo(ctx context.Context, out io.Writer, w *sandbox.World, sc sandbox.Scenario, f demoFlags) error {
	v := newLiveView(out, w)
	res, err := w.Play(ctx, sc, sandbox.PlayOptions{Timeout: f.timeout, Observe: v.show})
	v.done()
	res.WriteSummary(out, w.Remote)
	if err != nil {
		fmt.Fprintln(out, "canaryd demo: interrupted; stopping everything")
		return errors.Join(w.Close(), exitError{exitFailure})
	}
	if !f.untilDone {
		fmt.Fprintf(out, "\nThe world keeps running: try the grpcurl line above, or open %s. Ctrl-C stops it.\n", w.StatusURL)
		<-ctx.Done()
		fmt.Fprintln(out, "canaryd demo: stopping everything")
	}
	if err := w.Close(); err != nil {
		fmt.Fprintf(out, "canaryd demo: stopping: %v\n", err)
	}
	if !res.OK {
		return exitError{exitFailure}
	}
	return nil
}

// demoWorkdir returns dir, made if missing, or a new temporary directory.
func demoWorkdir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "canaryd-demo-")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return abs, os.MkdirAll(abs, 0o755)
}

// liveView shows observations: redrawn in place on a terminal, one line per change
// otherwise.
type liveView struct {
	out     io.Writer
	w       *sandbox.World
	tty     bool
	width   int
	drawn   int // lines drawn last time, on a terminal
	lastKey string
	notes   int // notes printed, off a terminal
}

func newLiveView(out io.Writer, w *sandbox.World) *liveView {
	v := &liveView{out: out, w: w}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		v.tty = true
		if width, _, err := term.GetSize(int(f.Fd())); err == nil {
			v.width = width
		}
	}
	return v
}

func (v *liveView) show(o sandbox.Observation) {
	if !v.tty {
		for ; v.notes < len(o.Notes); v.notes++ {
			fmt.Fprintln(v.out, "demo: "+o.Notes[v.notes])
		}
		if k := o.Key(); k != v.lastKey {
			v.lastKey = k
			fmt.Fprintln(v.out, sandbox.Line(o))
		}
		return
	}
	lines := sandbox.Render(o, v.w.StatusURL, v.w.Gateway.Addr())
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn) // back to the view's first line
	}
	for _, l := range lines {
		b.WriteString("\x1b[2K" + clip(l, v.width) + "\n")
	}
	b.WriteString("\x1b[J") // clear what a longer view left below
	v.drawn = len(lines)
	fmt.Fprint(v.out, b.String())
}

func (v *liveView) done() { v.drawn = 0 }

// clip cuts s to width runes (no limit when width <= 0), so no line wraps and the
// redraw stays aligned.
func clip(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) < width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1])
}
