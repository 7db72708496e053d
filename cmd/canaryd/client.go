package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/canarydio/canaryd/server"
)

// The on-call commands talk to a running daemon's API. Where it is and how to authenticate
// come from flags, defaulting to these environment variables.
const (
	envServer     = "CANARYD_SERVER"
	envTokenFile  = "CANARYD_TOKEN_FILE"
	defaultServer = "http://127.0.0.1:8090"
)

// clientCommands returns the on-call commands: status, history, and the operator actions.
func clientCommands() []*cobra.Command {
	cmds := []*cobra.Command{newStatusCmd(), newHistoryCmd()}
	for _, a := range actionHelp {
		cmds = append(cmds, newActionCmd(a.name, a.short))
	}
	return cmds
}

// clientFlags are the flags every on-call command has.
type clientFlags struct {
	server    string
	tokenFile string
	timeout   time.Duration
}

func (f *clientFlags) register(c *cobra.Command) {
	server := os.Getenv(envServer)
	if server == "" {
		server = defaultServer
	}
	c.Flags().StringVar(&f.server, "server", server, "canaryd's API address ($"+envServer+")")
	c.Flags().StringVar(&f.tokenFile, "token-file", os.Getenv(envTokenFile), "file holding the API token, for actions ($"+envTokenFile+")")
	c.Flags().DurationVar(&f.timeout, "timeout", time.Minute, "how long one request may take")
	c.ValidArgsFunction = f.completeNames
}

// apiClient calls canaryd's status API.
type apiClient struct {
	base  *url.URL
	token string // empty: no Authorization header
	http  *http.Client
}

// newClient returns a client for f.server; withToken reads the token file, which actions
// need. The token is kept in memory only and never printed.
func (f *clientFlags) newClient(withToken bool) (*apiClient, error) {
	raw := f.server
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Errorf("--server %q is not an http(s) address such as %s", f.server, defaultServer)}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &apiClient{base: u, http: &http.Client{Timeout: f.timeout}}
	if !withToken {
		return c, nil
	}
	if f.tokenFile == "" {
		return nil, usageError{fmt.Errorf("actions need the API token: pass --token-file or set $%s", envTokenFile)}
	}
	b, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("read the token: %w", err)
	}
	c.token = strings.TrimSpace(string(b))
	if c.token == "" {
		return nil, fmt.Errorf("read the token: %s is empty", f.tokenFile)
	}
	return c, nil
}

// httpError is an answer of the server that is not 2xx.
type httpError struct {
	Status int
	Msg    string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// do sends one request and decodes a 2xx JSON answer into out. It returns an *httpError
// for any other status, and an error naming the URL (credentials redacted) when canaryd
// cannot be reached.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach canaryd at %s: %v", c.base.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, u.Redacted(), err)
	}
	if resp.StatusCode/100 != 2 {
		var e server.APIError
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return fmt.Errorf("%s %s: %w", method, u.Redacted(), &httpError{Status: resp.StatusCode, Msg: e.Error})
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not canaryd's JSON: %w", method, u.Redacted(), err)
	}
	return nil
}

// unwrapURLError drops *url.Error's repetition of the method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var op *net.OpError
		if errors.As(ue.Err, &op) {
			return op
		}
		return ue.Err
	}
	return err
}

func rolloutPath(name string) string { return "/api/v1/rollouts/" + url.PathEscape(name) }

// actor names who runs an action: $USER@hostname.
func actor() string {
	user := os.Getenv("USER")
	if user == "" {
		user = os.Getenv("LOGNAME")
	}
	if user == "" {
		user = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return user
	}
	return user + "@" + host
}
