// Package serve_test runs `canaryd serve` end to end as a separate process against real
// parts: kube-apiserver with Istio's CRDs (apply mode), a bare Git remote and the git CLI
// playing a person, real greeters behind the sandbox's weighted gateway, and a real
// Prometheus scraping it.
package serve_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/canarydio/canaryd/sandbox/gateway"
	"github.com/canarydio/canaryd/sandbox/greeter"
	"github.com/canarydio/canaryd/test/kubetest"
	"github.com/canarydio/canaryd/test/promtest"
)

func TestMain(m *testing.M) {
	kubetest.Main(m, func() { // the built canaryd is the test binary's own
		if binPath != "" {
			os.RemoveAll(filepath.Dir(binPath))
		}
	})
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// canarydBinary builds cmd/canaryd once per test binary, with the race detector when the
// tests run with it.
func canarydBinary(t testing.TB) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "canaryd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "canaryd")
		args := []string{"build", "-o", binPath}
		if raceBuild {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../../cmd/canaryd")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// world is one rollout's whole environment, torn down by the test's cleanup.
type world struct {
	t        testing.TB
	dir      string
	ns       string
	remote   string // the bare repository's path
	kube     *kubetest.Env
	kclient  *kubetest.Client
	v1, v2   *greeter.Server
	v1Addr   string
	v2Addr   string
	gwAddr   string
	gw       *gateway.Gateway
	prom     *promtest.Server
	listen   string
	token    string
	config   string
	proc     *exec.Cmd
	procDone chan error
	logs     *bytes.Buffer
	logMu    *sync.Mutex
	// grpcRoute makes the world's rollout step deploy/sample-gateway-api's GRPCRoute
	// rather than the VirtualService.
	grpcRoute bool
	// fqdn makes the VirtualService's destinations name the host by its FQDN.
	fqdn bool
}

const rolloutName = "grpc-helloworld-py"

func newWorld(t *testing.T) *world { return newWorldTB(t) }

func newWorldTB(t testing.TB, opts ...func(*world)) *world {
	if testing.Short() {
		t.Skip("starts kube-apiserver, Prometheus and canaryd serve; run without -short")
	}
	w := &world{t: t, dir: t.TempDir(), kube: kubetest.Start(t), token: "s3cret-token", logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	for _, o := range opts {
		o(w)
	}
	w.ns = w.kube.Namespace(t)
	kc, err := kubetest.NewClient(w.kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	w.kclient = kc
	w.v1, w.v1Addr = startGreeter(t, "grpc-helloworld-py-v1-7d9f")
	w.v2, w.v2Addr = startGreeter(t, "grpc-helloworld-py-v2-5c8b")
	w.seedRemote()
	w.seedCluster()
	w.startGateway()
	w.prom = promtest.StartT(t, w.gw.MetricsAddr())
	w.startTraffic()
	w.writeConfig()
	return w
}

func startGreeter(t testing.TB, instance string) (*greeter.Server, string) {
	s, err := greeter.NewServer(greeter.Options{Instance: instance, Reflection: true})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return s, lis.Addr().String()
}

// git runs the git CLI as a person would, in dir.
func (w *world) git(dir string, args ...string) string {
	w.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Pat Person", "GIT_AUTHOR_EMAIL=pat@example.com",
		"GIT_COMMITTER_NAME=Pat Person", "GIT_COMMITTER_EMAIL=pat@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+w.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (w *world) manifest() string {
	data, err := os.ReadFile("../../" + w.manifestPath())
	if err != nil {
		w.t.Fatal(err)
	}
	m := strings.ReplaceAll(string(data), "namespace: default", "namespace: "+w.ns)
	if w.fqdn {
		m = strings.ReplaceAll(m, "        host: grpc-helloworld-py\n", "        host: grpc-helloworld-py."+w.ns+".svc.cluster.local\n")
	}
	return m
}

func (w *world) spec(extra string) string {
	return fmt.Sprintf(`apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata: {name: %s}
spec:
%s
  steps: [0, 40, 100]
  schedule: "@every 2s"
  analysis:
    interval: 1s
    bake: 2s
    failureLimit: 2
    metrics:
      - template: grpc-success-rate
        min: 0.95
        window: 10s
        minRequests: 5
        onNoData: hold
  probe:
    grpcurl: -d '{"name":"Jack"}' -plaintext %s helloworld.Greeter/SayHello
    expect: "Hello, Jack!"
    count: 3
    timeout: 2s
%s`, rolloutName, w.target(), w.gw0Addr(), extra)
}

// gw0Addr is the gateway's address, chosen before the gateway starts so that the spec
// in Git can name it.
func (w *world) gw0Addr() string {
	if w.gwAddr == "" {
		w.gwAddr = freeAddr(w.t)
	}
	return w.gwAddr
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
