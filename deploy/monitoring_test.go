package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/server"
	"github.com/canarydio/canaryd/test/kubetest"
	"github.com/canarydio/canaryd/test/promtest"
)

const monitoringDir = "monitoring"

// TestPrometheusRuleMatchesRules: the PrometheusRule ships exactly the groups of
// rules.yaml, which promtool tests.
func TestPrometheusRuleMatchesRules(t *testing.T) {
	var plain struct {
		Groups []any `yaml:"groups"`
	}
	var crd struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Groups []any `yaml:"groups"`
		} `yaml:"spec"`
	}
	readYAML(t, filepath.Join(monitoringDir, "rules.yaml"), &plain)
	readYAML(t, filepath.Join(monitoringDir, "prometheusrule.yaml"), &crd)
	if crd.Kind != "PrometheusRule" || len(plain.Groups) == 0 {
		t.Fatalf("kind %q, %d groups", crd.Kind, len(plain.Groups))
	}
	if d := cmp.Diff(plain.Groups, crd.Spec.Groups); d != "" {
		t.Errorf("prometheusrule.yaml differs from rules.yaml (-rules.yaml +prometheusrule.yaml):\n%s", d)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// promtool is Debian's promtool, installed with Prometheus by test/deps/prometheus.sh.
func promtool(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs promtool; skipped with -short")
	}
	for _, p := range []string{"/usr/bin/promtool", "promtool"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("no promtool: run %s (Debian's prometheus package ships it)", promtest.DepsScript)
	return ""
}

// TestAlertRules: `promtool check rules` accepts the rules and `promtool test rules` passes
// for every shipped alert; rules_test.yaml covers each alert by name.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = monitoringDir
		out, err := cmd.CombinedOutput()
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Errorf("promtool %s: %v", strings.Join(args, " "), err)
		}
	}
	tests, err := os.ReadFile(filepath.Join(monitoringDir, "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range alertNames(t) {
		if !strings.Contains(string(tests), "alertname: "+name+"\n") {
			t.Errorf("rules_test.yaml does not test %s", name)
		}
	}
}

func alertNames(t *testing.T) []string {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join(monitoringDir, "rules.yaml"), &rules)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	return names
}

// metricsTarget serves canaryd's /metrics, as the daemon registers them, on loopback, with
// one rollout progressing and one Invalid.
func metricsTarget(t *testing.T) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := server.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.SetBuild("v0.1.0-test")
	m.SetLeader(true)
	m.SetRollout(server.Rollout{Name: "hello", Phase: rollout.Progressing, Stable: "v1", Canary: "v2", Weights: rollout.CanaryAt(40)})
	m.SetRollout(server.Rollout{Name: "typo", Phase: rollout.Invalid})
	m.ObserveVerdicts("hello", []rollout.Verdict{{Gate: "grpc-success-rate", Result: rollout.Pass,
		Evidence: []rollout.Evidence{{Value: 0.999, Threshold: ">= 0.99"}}}})
	m.ObserveStep(300 * time.Millisecond)
	m.ObservePush(100*time.Millisecond, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// startPrometheus runs Debian's Prometheus scraping target every second, with the shipped
// alerts loaded.
func startPrometheus(t *testing.T, target string) *promtest.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real Prometheus; skipped with -short")
	}
	rules, err := filepath.Abs(filepath.Join(monitoringDir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := promtest.Start(ctx, promtest.Config{Targets: []string{target}, RuleFiles: []string{rules}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

// promQuery runs an instant query and returns the number of series it answered.
func promQuery(base, q string) (int, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("%s", body.Error)
	}
	return len(body.Data.Result), nil
}

// dashboardQueries are the PromQL of every panel of dashboard.json, with Grafana's
// variables as Grafana would fill them in for "All".
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(monitoringDir, "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	fill := strings.NewReplacer("$rollout", ".*", "$__rate_interval", "1m")
	out := map[string]string{}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			out[fmt.Sprintf("%s #%d", p.Title, i+1)] = fill.Replace(tg.Expr)
		}
	}
	if len(out) < 8 {
		t.Fatalf("dashboard.json has %d queries", len(out))
	}
	return out
}

// TestMonitoringOnRealPrometheus: every dashboard query is valid PromQL that finds
// canaryd's series in a real Prometheus scraping canaryd's metrics, and an Invalid
// rollout raises CanarydInvalidSpec (pending within seconds, firing after its for: 1m).
func TestMonitoringOnRealPrometheus(t *testing.T) {
	queries := dashboardQueries(t)
	p := startPrometheus(t, metricsTarget(t))
	for name, q := range queries {
		kubetest.Eventually(t, 45*time.Second, func() (bool, string) {
			n, err := promQuery(p.URL, q)
			return err == nil && n > 0, fmt.Sprintf("panel %s: %s: %d series, %v", name, q, n, err)
		})
	}
	kubetest.Eventually(t, 45*time.Second, func() (bool, string) {
		n, err := promQuery(p.URL, `ALERTS{alertname="CanarydInvalidSpec",rollout="typo"}`)
		return err == nil && n > 0, fmt.Sprintf("CanarydInvalidSpec not raised for the Invalid rollout: %d, %v", n, err)
	})
	if n, err := promQuery(p.URL, `ALERTS{alertname="CanarydInvalidSpec",rollout="hello"}`); err != nil || n != 0 {
		t.Errorf("CanarydInvalidSpec raised for the valid rollout: %d, %v", n, err)
	}
}
