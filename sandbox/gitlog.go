package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
)

// Ref is the route of the sample's VirtualService that the demo's rollout manages.
var Ref = gitops.VSRef{Namespace: "default", Name: "grpc-vs", Host: "grpc-helloworld-py", Stable: "v1", Canary: "v2"}

// Commit is one commit of the demo's remote, newest first in a Log.
type Commit struct {
	SHA      string
	Author   string // "Name <email>"
	Time     time.Time
	Subject  string
	Trailers map[string]string // Rollout, Rollout-Step, Rollout-Weights, Rollout-Reason, ...
}

// Short returns the commit's first 12 hex digits.
func (c Commit) Short() string { return c.SHA[:min(12, len(c.SHA))] }

// ByCanaryd reports whether the commit carries canaryd's trailers.
func (c Commit) ByCanaryd() bool { return c.Trailers[gitops.TrailerRollout] != "" }

// Log returns the commits of branch main of the bare repository remote, newest first.
func Log(ctx context.Context, remote string) ([]Commit, error) {
	out, err := gitOutput(ctx, remote, seedAuthor, "log", "--format="+logFormat, "main")
	if err != nil {
		return nil, err
	}
	log, err := parseLog(out)
	if err != nil {
		return nil, fmt.Errorf("git log of %s: %w", remote, err)
	}
	return log, nil
}

// logFormat makes git log print one record per commit, its fields split by US (0x1f) and
// the records ended by RS (0x1e); the trailers come last, one "Key: value" per line.
const logFormat = "%H%x1f%an <%ae>%x1f%aI%x1f%s%x1f%(trailers:only,unfold)%x1e"

// parseLog reads git log's output in logFormat.
func parseLog(out string) ([]Commit, error) {
	var log []Commit
	for rec := range strings.SplitSeq(out, "\x1e") {
		rec = strings.TrimLeft(rec, "\n")
		if rec == "" {
			continue
		}
		f := strings.Split(rec, "\x1f")
		if len(f) != 5 {
			return nil, fmt.Errorf("malformed record %q", rec)
		}
		c := Commit{SHA: f[0], Author: f[1], Subject: f[3], Trailers: map[string]string{}}
		c.Time, _ = time.Parse(time.RFC3339, f[2])
		for line := range strings.SplitSeq(f[4], "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok {
				c.Trailers[k] = strings.TrimSpace(v)
			}
		}
		log = append(log, c)
	}
	return log, nil
}

// WeightsAt returns the VirtualService's weights in rules.yaml at rev of remote.
func WeightsAt(ctx context.Context, remote, rev string) (rollout.Weights, error) {
	return SampleVirtualService.WeightsAt(ctx, remote, rev)
}

// PersonReverts plays an on-call engineer: in WORKDIR/person it clones remote, runs
// git revert --no-edit sha as "Pat Person <pat@example.com>" and pushes. It returns the
// revert commit. A push that loses a race is an error: the person would look again.
func PersonReverts(ctx context.Context, workdir, remote, sha string) (string, error) {
	dir := filepath.Join(workdir, "person")
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	who := PersonName + " <" + PersonEmail + ">"
	if err := runGit(ctx, workdir, who, "clone", "-q", "--branch", "main", remote, dir); err != nil {
		return "", err
	}
	for _, args := range [][]string{{"revert", "--no-edit", sha}, {"push", "-q", "origin", "main"}} {
		if err := runGit(ctx, dir, who, args...); err != nil {
			return "", err
		}
	}
	out, err := gitOutput(ctx, dir, who, "rev-parse", "HEAD")
	return strings.TrimSpace(out), err
}
