package main

import (
	"fmt"
	"net"
	"os"
	"time"

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
		TokenFile string `yaml:"tokenFile"`
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
}

// Person is a commit's author or committer.
type Person struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

// KubeConfig says whether and how canaryd talks to the cluster.
type KubeConfig struct {
	Mode           string `yaml:"mode"`
	Kubeconfig     string `yaml:"kubeconfig"`
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
	if k := cfg.Kubernetes; k != nil {
		if k.Mode != "apply" && k.Mode != "gitops" {
			bad("kubernetes.mode", fmt.Sprintf("must be apply or gitops, not %q", k.Mode))
		}
		if k.LeaderElection.Namespace == "" {
			k.LeaderElection.Namespace = "canaryd"
		}
		if k.LeaderElection.Name == "" {
			k.LeaderElection.Name = "canaryd"
		}
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
