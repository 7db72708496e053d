package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/store"
)

// Config is the daemon's configuration file (canaryd serve --config canaryd.yaml).
type Config struct {
	Listen     string      `yaml:"listen"`
	DataDir    string      `yaml:"dataDir"`
	Git        GitConfig   `yaml:"git"`
	Kubernetes *KubeConfig `yaml:"kubernetes"`
	Prometheus struct {
		Address string `yaml:"address"`
	} `yaml:"prometheus"`
	API struct {
		TokenFile  string    `yaml:"tokenFile"`
		TokensFile string    `yaml:"tokensFile"`
		TLS        TLSConfig `yaml:"tls"`
		// Pprof serves the Go runtime's profiles at /debug/pprof/ to callers with a token.
		Pprof bool `yaml:"pprof"`
	} `yaml:"api"`
	// Egress says which probe and Prometheus targets specs may name and which local files
	// they may read; link-local and cloud-metadata addresses are refused by default.
	Egress rollout.Egress `yaml:"egress"`

	// History bounds the store's history per rollout; zero values take the defaults (a week
	// of verdicts, a year of everything else).
	History struct {
		VerdictAge  rollout.Duration `yaml:"verdictAge"`
		EventAge    rollout.Duration `yaml:"eventAge"`
		MaxVerdicts int              `yaml:"maxVerdicts"`
		MaxEvents   int              `yaml:"maxEvents"`
	} `yaml:"history"`

	egress *rollout.EgressPolicy // Egress, compiled by loadConfig

	Notify NotifyConfig `yaml:"notify"`
}

// GitConfig says where the rollouts and manifests live and how canaryd commits.
type GitConfig struct {
	URL          string           `yaml:"url"`
	Branch       string           `yaml:"branch"`
	Rollouts     string           `yaml:"rollouts"`
	Author       Person           `yaml:"author"`
	Committer    Person           `yaml:"committer"`
	PollInterval rollout.Duration `yaml:"pollInterval"`
	// UnreachableAfter is how long fetches may fail before /readyz says not ready (2m).
	UnreachableAfter rollout.Duration `yaml:"unreachableAfter"`
	// BatchWindow is how long a step waits for others to share its push (100ms; 0: none).
	BatchWindow rollout.Duration `yaml:"batchWindow"`
	// Timeout bounds each fetch and each push attempt (1m): a remote that accepts and then
	// stays silent costs at most that.
	Timeout rollout.Duration `yaml:"timeout"`
	// MaxManifestBytes is the largest manifest a spec may name (4 MiB).
	MaxManifestBytes int `yaml:"maxManifestBytes"`
	Auth             struct {
		SSHKeyFile           string `yaml:"sshKeyFile"`
		SSHKeyPassphraseFile string `yaml:"sshKeyPassphraseFile"`
		KnownHostsFile       string `yaml:"knownHostsFile"`
		TokenFile            string `yaml:"tokenFile"`
		PasswordFile         string `yaml:"passwordFile"`
		Username             string `yaml:"username"`
		CABundleFile         string `yaml:"caBundleFile"`
	} `yaml:"auth"`
	SigningKeyFile string `yaml:"signingKeyFile"`
	// WebhookSecretFile holds the secret POST /hooks/git checks (GitHub's and Gitea's
	// HMAC-SHA256 signature, GitLab's token). Without it the hook proves nothing and may
	// only trigger a fetch, rate-limited.
	WebhookSecretFile string `yaml:"webhookSecretFile"`
	// CommitURL links commits on the status page: a URL with {sha}.
	CommitURL string `yaml:"commitURL"`
}

// Person is a commit's author or committer.
type Person struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

// KubeConfig says whether and how canaryd talks to the cluster.
type KubeConfig struct {
	Mode       string `yaml:"mode"`
	Kubeconfig string `yaml:"kubeconfig"`
	// ConvergeTimeout, in gitops mode, is how long a step forward waits for the live
	// VirtualService to carry its weights before its bake starts; 0 means 5m.
	ConvergeTimeout rollout.Duration `yaml:"convergeTimeout"`
	// QPS and Burst are the client-side rate limit of canaryd's requests to the API server
	// (100 and 200); MaxApplies bounds the weight changes in flight at once (16), rollbacks
	// served first.
	QPS            float32 `yaml:"qps"`
	Burst          int     `yaml:"burst"`
	MaxApplies     int     `yaml:"maxApplies"`
	LeaderElection struct {
		Enabled   bool   `yaml:"enabled"`
		Namespace string `yaml:"namespace"`
		Name      string `yaml:"name"`
		// LeaseDuration, RenewDeadline and RetryPeriod tune the Lease (15s, 10s, 2s).
		LeaseDuration rollout.Duration `yaml:"leaseDuration"`
		RenewDeadline rollout.Duration `yaml:"renewDeadline"`
		RetryPeriod   rollout.Duration `yaml:"retryPeriod"`
	} `yaml:"leaderElection"`
}

// loadConfig reads and checks a config file; every problem is reported with its position.
func loadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg := &Config{Listen: "127.0.0.1:8090", DataDir: "/var/lib/canaryd"}
	if err := rollout.DecodeYAML(path, data, cfg); err != nil {
		return nil, err
	}
	var ps rollout.Problems
	bad := func(field, msg string) {
		ps = append(ps, rollout.Problem{File: path, Line: 1, Col: 1, Field: field, Msg: msg})
	}
	if cfg.Git.URL == "" {
		bad("git.url", "is required")
	}
	if cfg.Git.Branch == "" {
		cfg.Git.Branch = "main"
	}
	if cfg.Git.Rollouts == "" {
		bad("git.rollouts", "is required: a glob of Rollout specs in the repo, such as rollouts/*.yaml")
	}
	if !cfg.Git.PollInterval.Set {
		cfg.Git.PollInterval = rollout.Duration{Duration: 10 * time.Second}
	}
	if !cfg.Git.UnreachableAfter.Set {
		cfg.Git.UnreachableAfter = rollout.Duration{Duration: 2 * time.Minute}
	}
	if !cfg.Git.BatchWindow.Set {
		cfg.Git.BatchWindow = rollout.Duration{Duration: 100 * time.Millisecond}
	}
	if cfg.Git.BatchWindow.Duration < 0 || cfg.Git.BatchWindow.Duration > time.Minute {
		bad("git.batchWindow", fmt.Sprintf("%s: want 0 to 1m", cfg.Git.BatchWindow.Duration))
	}
	if cfg.Git.MaxManifestBytes == 0 {
		cfg.Git.MaxManifestBytes = gitops.MaxManifestBytes
	}
	if cfg.Git.MaxManifestBytes < 1<<10 || cfg.Git.MaxManifestBytes > 64<<20 {
		bad("git.maxManifestBytes", fmt.Sprintf("%d: want 1024 to %d (64 MiB)", cfg.Git.MaxManifestBytes, 64<<20))
	}
	if k := cfg.Kubernetes; k != nil {
		if k.Mode != "apply" && k.Mode != "gitops" {
			bad("kubernetes.mode", fmt.Sprintf("must be apply or gitops, not %q", k.Mode))
		}
		if k.LeaderElection.Namespace == "" {
			k.LeaderElection.Namespace = leaseNamespace()
		}
		if k.LeaderElection.Name == "" {
			k.LeaderElection.Name = "canaryd"
		}
	}
	checkNotify(cfg, bad)
	if u := cfg.Git.CommitURL; u != "" && (!strings.Contains(u, "{sha}") || !(strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://"))) {
		bad("git.commitURL", fmt.Sprintf("%q: want an http(s) URL with {sha}, such as https://github.com/acme/deploy/commit/{sha}", u))
	}
	if t := cfg.API.TLS; (t.CertFile == "") != (t.KeyFile == "") {
		bad("api.tls", "set both certFile and keyFile, or neither")
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		bad("listen", fmt.Sprintf("%q is not HOST:PORT", cfg.Listen))
	}
	pol, err := rollout.CompileEgress(cfg.Egress)
	if err != nil {
		bad("egress", err.Error())
	}
	cfg.egress = pol
	return cfg, ps.Err()
}

// retention is the store's history bound the config asks for.
func retention(cfg *Config) store.Retention {
	h := cfg.History
	return store.Retention{VerdictAge: h.VerdictAge.Duration, EventAge: h.EventAge.Duration,
		MaxVerdicts: h.MaxVerdicts, MaxEvents: h.MaxEvents}
}

// leaseNamespace is where the Lease lives when the config names no namespace: the pod's own
// ($POD_NAMESPACE, which deploy/canaryd sets from the downward API), else "canaryd".
func leaseNamespace() string {
	if ns := strings.TrimSpace(os.Getenv("POD_NAMESPACE")); ns != "" {
		return ns
	}
	return "canaryd"
}

// TLSConfig makes the API serve HTTPS.
type TLSConfig struct {
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}
