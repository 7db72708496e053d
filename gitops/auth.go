package gitops

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Auth says how canaryd proves who it is to the remote. Secrets are read from files, never
// from the configuration itself, and never appear in logs or errors.
type Auth struct {
	// TokenFile holds an access token for https, sent as the password of basic auth.
	TokenFile string
	// PasswordFile holds a password for https basic auth.
	PasswordFile string
	// Username for https basic auth; "x-access-token" with a token when empty (GitHub and
	// Gitea accept any name with a token; GitLab wants "oauth2").
	Username string
	// SSHKeyFile is a private key for ssh:// remotes (unencrypted, or with
	// SSHKeyPassphraseFile).
	SSHKeyFile           string
	SSHKeyPassphraseFile string
	// KnownHostsFile pins the ssh host keys; required for ssh, host keys are always checked.
	KnownHostsFile string
	// CABundleFile holds PEM certificates trusted for https besides the system's (a
	// self-hosted forge with a private CA). TLS is always verified.
	CABundleFile string
}

// ErrAuth reports credentials that cannot be loaded or do not fit the remote's scheme.
var ErrAuth = errors.New("git auth")

// method builds the go-git auth method for rawURL, and returns the secrets it read so that
// errors can be scrubbed of them.
func (a Auth) method(rawURL string) (transport.AuthMethod, []string, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("remote %s: %w", Redact(rawURL), err)
	}
	switch ep.Protocol {
	case "http", "https":
		return a.httpAuth()
	case "ssh":
		m, err := a.sshAuth(ep.User)
		return m, nil, err
	}
	if a.TokenFile != "" || a.PasswordFile != "" || a.SSHKeyFile != "" {
		return nil, nil, fmt.Errorf("%s remotes take no credentials: %w", ep.Protocol, ErrAuth)
	}
	return nil, nil, nil
}

func (a Auth) httpAuth() (transport.AuthMethod, []string, error) {
	file, user := a.TokenFile, a.Username
	if file == "" {
		file = a.PasswordFile
	} else if user == "" {
		user = "x-access-token"
	}
	if file == "" {
		return nil, nil, nil // public, or credentials in the URL
	}
	secret, err := readSecret(file)
	if err != nil {
		return nil, nil, err
	}
	return &githttp.BasicAuth{Username: user, Password: secret}, []string{secret}, nil
}

func (a Auth) sshAuth(user string) (transport.AuthMethod, error) {
	if a.SSHKeyFile == "" {
		return nil, fmt.Errorf("ssh remote needs sshKeyFile: %w", ErrAuth)
	}
	if a.KnownHostsFile == "" {
		return nil, fmt.Errorf("ssh remote needs knownHostsFile (host keys are always checked): %w", ErrAuth)
	}
	if user == "" {
		user = "git"
	}
	pass := ""
	if a.SSHKeyPassphraseFile != "" {
		var err error
		if pass, err = readSecret(a.SSHKeyPassphraseFile); err != nil {
			return nil, err
		}
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, pass)
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %v: %w", a.SSHKeyFile, err, ErrAuth)
	}
	cb, err := gitssh.NewKnownHostsCallback(a.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("known hosts %s: %v: %w", a.KnownHostsFile, err, ErrAuth)
	}
	keys.HostKeyCallback = cb
	return keys, nil
}

// readSecret reads a one-line secret from a file.
func readSecret(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret: %w: %w", err, ErrAuth)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty: %w", file, ErrAuth)
	}
	return s, nil
}

// stripUser returns rawURL without its user info, for naming the cache directory.
func stripUser(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	u.User = nil
	return u.String()
}
