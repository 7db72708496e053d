package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/canarydio/canaryd/gitops"
)

// openRepo clones the remote and reads the first weights; without them there is nothing
// to route by.
func (g *Gateway) openRepo(ctx context.Context) error {
	gc := g.opts.Git
	if gc.CacheDir == "" || gc.Manifest == "" {
		return fmt.Errorf("gateway: git cache dir and manifest are required")
	}
	repo, err := gitops.Open(ctx, gitops.Config{URL: gc.URL, Branch: gc.Branch, Dir: gc.CacheDir, Depth: 1})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.repo = repo
	w, err := g.read()
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.current = w
	g.log.Info("gateway routes", "weight", w.weights.String(), "commit", w.commit)
	return nil
}

// read returns the weights in the manifest at the cache's head. On an unreadable manifest
// it returns the head's commit with the error.
func (g *Gateway) read() (weightsAt, error) {
	gc := g.opts.Git
	files, commit, err := g.repo.Files(gc.Manifest)
	if err != nil {
		return weightsAt{}, err
	}
	data, ok := files[gc.Manifest]
	if !ok {
		return weightsAt{commit: commit}, fmt.Errorf("%s is not in commit %.12s", gc.Manifest, commit)
	}
	w, err := gitops.ReadWeights(data, gc.Ref)
	if err != nil {
		return weightsAt{commit: commit}, fmt.Errorf("%s at %.12s: %w", gc.Manifest, commit, err)
	}
	return weightsAt{weights: w, commit: commit, read: time.Now()}, nil
}

// follow fetches the remote every Refresh until ctx ends. A failed fetch or an unreadable
// manifest keeps the last good weights, as Argo CD keeps the last synced state.
func (g *Gateway) follow(ctx context.Context) {
	t := time.NewTicker(g.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := g.refresh(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("gateway keeps the last good weights", "err", err)
		}
	}
}

func (g *Gateway) refresh(ctx context.Context) error {
	if _, err := g.repo.Sync(ctx); err != nil {
		return err
	}
	w, err := g.read()
	g.mu.Lock()
	old := g.current
	g.fetched, g.lastErr = w.commit, err
	if err == nil {
		g.current = w
	}
	g.mu.Unlock()
	if err != nil {
		return err
	}
	if old.weights != w.weights {
		g.log.Info("gateway routes", "weight", w.weights.String(), "commit", w.commit)
	}
	return nil
}

// Status is what GET /weights answers.
type Status struct {
	Stable int    `json:"stable"`
	Canary int    `json:"canary"`
	Commit string `json:"commit"`
	// Read is when the weights were last read from Git.
	Read time.Time `json:"read"`
	// Fetched is the head last fetched, and Error why its manifest could not be routed by
	// (the gateway then keeps the weights above).
	Fetched string `json:"fetched,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (g *Gateway) serveWeights(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(g.Status())
}

// Status returns the weights the gateway routes by, and what it last fetched.
func (g *Gateway) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.current
	st := Status{Stable: cur.weights.Stable, Canary: cur.weights.Canary, Commit: cur.commit, Read: cur.read, Fetched: g.fetched}
	if g.lastErr != nil {
		st.Error = g.lastErr.Error()
	}
	return st
}
