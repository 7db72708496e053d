// Package kubetest runs the real Kubernetes API server canaryd's tests use:
// kube-apiserver built from the k8s.io/kubernetes module by
// test/deps/kube-apiserver.sh, Debian's etcd, started with
// controller-runtime's envtest, with Istio's CRDs from the istio.io/api
// module and the Gateway API's standard-channel CRDs from the
// sigs.k8s.io/gateway-api module installed. Nothing is downloaded at run time.
//
// One API server is shared by every test of a test binary: the package's
// TestMain calls Main, tests call Start, and each test works in its own
// Namespace.
package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the kube-apiserver release test/deps/kube-apiserver.sh builds.
const K8sVersion = "v1.37.2"

// depsScript is what a developer runs to install the API server's binaries.
const depsScript = "test/deps/kube-apiserver.sh"

// Env is a running API server with Istio's CRDs.
type Env struct {
	// Config is an administrator's (system:masters) config without
	// client-side rate limits. Callers copy it before changing it.
	Config *rest.Config
	// Assets is the directory holding kube-apiserver and etcd.
	Assets string

	env *envtest.Environment
	out *syncWriter
}

var shared struct {
	sync.Mutex
	main bool
	env  *Env
	err  error
}

// Main runs the tests and benchmarks of a package that uses Start, then
// stops the shared API server and calls each of after (the package's own
// clean-up, since Main exits). Call it from TestMain:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
func Main(m *testing.M, after ...func()) {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.env != nil {
		if err := shared.env.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: stop the api server: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		shared.env = nil
	}
	shared.Unlock()
	for _, f := range after {
		f()
	}
	os.Exit(code)
}

// Start returns the shared API server, starting it on first use (a few
// seconds). It skips the test under -short, and fails it, naming
// test/deps/kube-apiserver.sh, when the binaries are missing.
func Start(tb testing.TB) *Env {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs a real kube-apiserver and etcd; skipped with -short")
	}
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		tb.Fatal("kubetest: the package's TestMain must call kubetest.Main(m), which stops the shared api server")
	}
	if shared.env == nil && shared.err == nil {
		shared.env, shared.err = start()
	}
	if shared.err != nil {
		tb.Fatalf("kubetest: %v", shared.err)
	}
	return shared.env
}

// AssetsDir is where test/deps/kube-apiserver.sh puts kube-apiserver and
// etcd: $KUBEBUILDER_ASSETS when set, else
// ${CANARYD_CACHE:-$HOME/.cache/canaryd}/k8s-<version>.
func AssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	cache := os.Getenv("CANARYD_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "canaryd")
	}
	return filepath.Join(cache, "k8s-"+K8sVersion)
}

func start() (*Env, error) {
	dir := AssetsDir()
	apiserver := filepath.Join(dir, "kube-apiserver")
	if _, err := os.Stat(apiserver); err != nil {
		return nil, fmt.Errorf("no kube-apiserver at %s: run %s (it builds it once from the k8s.io/kubernetes module): %w",
			apiserver, depsScript, err)
	}
	etcd := filepath.Join(dir, "etcd")
	if _, err := os.Stat(etcd); err != nil {
		if etcd, err = exec.LookPath("etcd"); err != nil {
			return nil, fmt.Errorf("no etcd in %s or on PATH: run %s (it installs Debian's etcd-server)", dir, depsScript)
		}
	}
	crds, err := IstioCRDs()
	if err != nil {
		return nil, err
	}
	gwCRDs, err := GatewayAPICRDs()
	if err != nil {
		return nil, err
	}
	out := &syncWriter{w: &bytes.Buffer{}}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              append([]string{crds}, gwCRDs...),
			ErrorIfPathMissing: true,
			MaxTime:            time.Minute,
		},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	env.ControlPlane.GetAPIServer().Path = apiserver
	env.ControlPlane.GetAPIServer().Out = out
	env.ControlPlane.GetAPIServer().Err = out
	env.ControlPlane.Etcd = &envtest.Etcd{Path: etcd}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("start kube-apiserver %s and etcd %s: %w\n%s", apiserver, etcd, err, tail(out.String(), 40))
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side limit for the harness itself
	return &Env{Config: cfg, Assets: dir, env: env, out: out}, nil
}

// IstioCRDs returns the path of Istio's CRDs in the istio.io/api module this
// module requires (kubernetes/customresourcedefinitions.gen.yaml). It asks
// the go command, which the tests run under.
func IstioCRDs() (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("find the istio.io/api module: go list: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("find the istio.io/api module: go list printed no directory (is it downloaded? run go mod download istio.io/api)")
	}
	path := filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("istio CRDs: %w", err)
	}
	return path, nil
}

// GatewayAPICRDs returns the paths of the Gateway API's standard-channel CRDs
// (GatewayClass, Gateway, GRPCRoute, HTTPRoute, ...) in the
// sigs.k8s.io/gateway-api module this module requires (config/crd/standard).
func GatewayAPICRDs() ([]string, error) {
	dir, err := moduleDir("sigs.k8s.io/gateway-api")
	if err != nil {
		return nil, err
	}
	all, err := filepath.Glob(filepath.Join(dir, "config", "crd", "standard", "gateway.networking.k8s.io_*.yaml"))
	var paths []string
	for _, p := range all {
		if !strings.Contains(filepath.Base(p), "_vap_") { // an admission policy, not a CRD
			paths = append(paths, p)
		}
	}
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("gateway api CRDs: none in %s (%v)", dir, err)
	}
	return paths, nil
}

// moduleDir asks the go command where a required module is.
func moduleDir(mod string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("find the %s module: go list: %w: %s", mod, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("find the %s module: go list printed no directory (is it downloaded? run go mod download %s)", mod, mod)
	}
	return dir, nil
}

// Output returns the API server's recent log lines, for failure messages.
func (e *Env) Output() string { return tail(e.out.String(), 40) }

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncWriter lets the API server's two output streams share a buffer.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keep the buffer bounded: the API server logs for as long as tests run.
	if s.w.Len() > 1<<20 {
		rest := s.w.Bytes()[s.w.Len()-(1<<19):]
		kept := append([]byte(nil), rest...)
		s.w.Reset()
		s.w.Write(kept)
	}
	return s.w.Write(p)
}
