package gitops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/canarydio/canaryd/rollout"
)

// maxOpenPacks bounds the pack files the cache keeps open.
const maxOpenPacks = 32

// Signature is a commit's author or committer.
type Signature struct {
	Name  string
	Email string
}

// Config says which repository and branch canaryd writes to, and how.
type Config struct {
	// URL of the remote: file://, git://, https:// or ssh://.
	URL string
	// Branch to read and write; "main" when empty.
	Branch string
	// Dir is the cache directory for the clone; one bare repository per URL and branch is
	// kept below it. Required.
	Dir  string
	Auth Auth
	// Author of canaryd's commits; "canaryd <canaryd@localhost>" when empty. Committer
	// defaults to Author.
	Author    Signature
	Committer Signature
	// SigningKeyFile is an armored OpenPGP private key (unencrypted); when set, every
	// commit is signed with it.
	SigningKeyFile string
	// Depth > 0 makes a shallow clone; revert detection and History then see only that deep.
	Depth int
	// MaxAttempts bounds how often a rejected push is replayed (default 8); Backoff is the
	// base of the jittered exponential wait between attempts (default 50ms).
	MaxAttempts int
	Backoff     time.Duration
	// BatchWindow is how long a write waits for others to share its commit chain and push
	// (default 100ms; negative: no wait); while writes still arrive then, it waits for them
	// up to one more window. A batch that holds a rollback or an abort is written at once.
	BatchWindow time.Duration
	// ChainBytes bounds what a batch's commits rewrite between them (default 64 MiB): a
	// batch whose commits, one per rollout, would rewrite more of manifests and trees is
	// written as fewer commits, each carrying several rollouts' trailers.
	ChainBytes int
	// FetchTimeout bounds each fetch and PushTimeout each push attempt (default 1m each):
	// a remote that accepts and then stays silent costs at most that.
	FetchTimeout, PushTimeout time.Duration
	// MaxWalk bounds how many commits are read walking back from the head to explain a
	// change or find canaryd's last write (default 10000).
	MaxWalk int
	// Now returns the commit time; time.Now when nil.
	Now func() time.Time
	// OnReplay, when set, is called each time a rejected push is fetched and replayed on
	// the new head (a metric counts it). It is called with the repo's lock held and must
	// not block or call back into the Repo.
	OnReplay func()
	// Log receives debug and info records; nil discards them.
	Log *slog.Logger
}

// Repo is canaryd's cached clone of the deployment repository. It writes weight changes as
// commits built without a worktree and pushes them without forcing, and reads what people
// did. A Repo is safe for concurrent use; its Git operations are serialised.
type Repo struct {
	cfg     Config
	url     string // redacted
	branch  plumbing.ReferenceName
	track   plumbing.ReferenceName
	auth    transport.AuthMethod
	secrets []string
	signer  *openpgp.Entity
	caCerts []byte // extra PEM CA certificates for https
	log     *slog.Logger

	mu      repoLock
	repo    *git.Repository
	store   storer.Storer
	closer  io.Closer
	docs    map[string]*rollout.Document // managed rollouts by name
	changes map[string]explained         // last explained change, by rollout
	newest  map[string]newest            // newest commit with the rollout's trailers, by rollout
	history historyIndex                 // every managed rollout's history at one head
	kick    chan struct{}
	// trees caches decoded trees by hash for entryAt; treesMu guards it and the lazily
	// built indexes of the trees in it.
	treesMu sync.Mutex
	trees   byteCache[*object.Tree] // bounded by treeSize
	// parsed caches parsed manifests by blob hash (guarded by mu), bounded by parsedSize.
	parsed byteCache[*manifest]
	// routeWeights caches the weights a route holds in a manifest's blob (guarded by mu):
	// a sync reports every rollout, and with thousands of manifests the parsed cache
	// cannot hold them all, so each report would parse its manifest again.
	routeWeights map[routeAt]rollout.Weights
	// groups caches a big commit's trailers by rollout (guarded by mu), read once: a batch
	// commit that carries a thousand rollouts is asked about each of them. groupsN counts
	// the rollouts it holds, to bound it.
	groups  map[plumbing.Hash]map[string]map[string]string
	groupsN int
	// headCommit is the head as last decoded (callers never change a commit): a batch
	// commit's message can be a megabyte, and the head is read on every report. While
	// headKnown, it is the tracking ref's commit; see moveHead. Both are guarded by mu.
	headCommit *object.Commit
	headKnown  bool
	changed    changedPaths // files changed since earlier heads, at one head (guarded by mu)

	// The write queue: SetWeights queues its write, and one flusher goroutine (running
	// while the queue is not empty) writes batches of them. qmu guards queue and flushing;
	// bg ends the flusher's work at Close.
	qmu      sync.Mutex
	queue    []*pendingWrite
	flushing bool
	urgent   chan struct{}
	bg       context.Context
	stopBg   context.CancelFunc
	wg       sync.WaitGroup
	// beforePush, when set (by tests), runs after a batch's chain is built and before it
	// is pushed: a person's push there makes the remote refuse the batch.
	beforePush func()
	// awaited, when set (by tests), runs when the flusher has waited out a batch's window
	// and is about to take the repo lock.
	awaited func()
}

// Open opens the cache for cfg.URL under cfg.Dir, cloning it the first time (a bare,
// single-branch clone without tags), and fetches the branch. When the fetch fails but the
// cache already holds the branch (a restart while the remote is down), Open logs a warning
// and succeeds; every later write fetches again. Errors name the remote with its
// credentials redacted. Close releases the cache.
func Open(ctx context.Context, cfg Config) (*Repo, error) {
	if cfg.URL == "" || cfg.Dir == "" {
		return nil, errors.New("gitops: url and dir are required")
	}
	setDefaults(&cfg)
	r := &Repo{
		cfg: cfg, url: Redact(cfg.URL), log: cfg.Log,
		branch: plumbing.NewBranchReferenceName(cfg.Branch),
		track:  plumbing.NewRemoteReferenceName("origin", cfg.Branch),
		mu:     newRepoLock(), docs: map[string]*rollout.Document{}, newest: map[string]newest{},
		changes: map[string]explained{}, kick: make(chan struct{}, 1), trees: newByteCache[*object.Tree](maxTreeBytes),
		urgent: make(chan struct{}, 1), parsed: newByteCache[*manifest](maxParsedBytes),
		routeWeights: map[routeAt]rollout.Weights{}, groups: map[plumbing.Hash]map[string]map[string]string{},
	}
	r.bg, r.stopBg = context.WithCancel(context.Background())
	var err error
	if r.auth, r.secrets, err = cfg.Auth.method(cfg.URL); err != nil {
		return nil, r.redact(err)
	}
	if cfg.Auth.CABundleFile != "" {
		if r.caCerts, err = os.ReadFile(cfg.Auth.CABundleFile); err != nil {
			return nil, fmt.Errorf("ca bundle: %w", err)
		}
	}
	if cfg.SigningKeyFile != "" {
		if r.signer, err = loadSigner(cfg.SigningKeyFile); err != nil {
			return nil, err
		}
	}
	if err := r.openCache(); err != nil {
		return nil, err
	}
	if err := r.fetch(ctx); err != nil {
		if _, herr := r.head(); herr != nil {
			r.closer.Close()
			return nil, err
		}
		r.log.Warn("remote unreachable, serving the cached branch until a fetch succeeds", "remote", r.url, "err", err)
	}
	return r, nil
}

func setDefaults(cfg *Config) {
	if cfg.Branch == "" {
		cfg.Branch = "main"
	}
	if cfg.Author.Name == "" {
		cfg.Author = Signature{Name: "canaryd", Email: "canaryd@localhost"}
	}
	if cfg.Committer.Name == "" {
		cfg.Committer = cfg.Author
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 50 * time.Millisecond
	}
	if cfg.ChainBytes <= 0 {
		cfg.ChainBytes = 64 << 20
	}
	if cfg.BatchWindow == 0 {
		cfg.BatchWindow = 100 * time.Millisecond
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = time.Minute
	}
	if cfg.PushTimeout <= 0 {
		cfg.PushTimeout = time.Minute
	}
	if cfg.MaxWalk <= 0 {
		cfg.MaxWalk = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
}

// openCache opens or initialises the bare cache repository and points origin at the URL.
func (r *Repo) openCache() error {
	r.moveHead()
	dir := r.cachePath()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("git cache: %w", err)
	}
	// Recently used pack files stay open between reads (a step reads a handful of objects,
	// and opening the pack for each would cost more than reading them), at most
	// maxOpenPacks of them, as every fetch adds a pack.
	st := filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRUDefault(),
		filesystem.Options{MaxOpenDescriptors: maxOpenPacks})
	repo, err := git.Open(st, nil)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.Init(st, nil)
	}
	if err != nil {
		st.Close()
		return fmt.Errorf("git cache %s: %w", dir, err)
	}
	r.closer = st
	rc := &config.RemoteConfig{
		Name:  "origin",
		URLs:  []string{r.cfg.URL},
		Fetch: []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%s", r.branch, r.track))},
	}
	c, err := repo.Config()
	if err != nil {
		return fmt.Errorf("git cache config: %w", err)
	}
	c.Remotes["origin"] = rc
	if err := repo.SetConfig(c); err != nil {
		return fmt.Errorf("git cache config: %w", err)
	}
	r.repo, r.store = repo, repo.Storer
	return nil
}

// cachePath is the cache repository of the URL and branch below Config.Dir.
func (r *Repo) cachePath() string {
	sum := sha256.Sum256([]byte(stripUser(r.cfg.URL) + "\x00" + r.cfg.Branch))
	return filepath.Join(r.cfg.Dir, hex.EncodeToString(sum[:8])+".git")
}

// Close fails the writes still queued, waits for the one being written, and releases the
// cache's open files. The Repo must not be used afterwards.
func (r *Repo) Close() error {
	r.stopBg()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closer.Close()
}

// URL returns the remote's URL with credentials redacted.
func (r *Repo) URL() string { return r.url }

// redact scrubs the remote URL and the secrets read for it from err.
func (r *Repo) redact(err error) error { return redactErr(err, r.cfg.URL, r.secrets...) }

// fetch brings the remote branch into the tracking ref, within Config.FetchTimeout.
func (r *Repo) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.FetchTimeout)
	defer cancel()
	defer r.moveHead()
	err := r.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{config.RefSpec(fmt.Sprintf("+%s:%s", r.branch, r.track))},
		Auth:       r.auth,
		Tags:       git.NoTags,
		Depth:      r.cfg.Depth,
		CABundle:   r.caCerts,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	if err != nil {
		return r.redact(fmt.Errorf("fetch %s of %s: %w", r.cfg.Branch, r.cfg.URL, err))
	}
	if err := r.compact(); err != nil { // the fetch itself succeeded; the cache still works
		r.log.Warn("compact git cache", "dir", r.cachePath(), "err", err)
	}
	return nil
}

// head returns the commit at the tip of the tracking ref.
// The caller holds the repo lock. The ref is read from disk only after a fetch or a push
// (moveHead) changed it: a reload of thousands of rollouts asks for the head of each.
func (r *Repo) head() (*object.Commit, error) {
	if r.headCommit != nil && r.headKnown {
		return r.headCommit, nil
	}
	ref, err := r.store.Reference(r.track)
	if err != nil {
		return nil, fmt.Errorf("branch %s of %s: %w", r.cfg.Branch, r.url, err)
	}
	if r.headCommit != nil && r.headCommit.Hash == ref.Hash() {
		r.headKnown = true
		return r.headCommit, nil
	}
	c, err := object.GetCommit(r.store, ref.Hash())
	if err != nil {
		return nil, fmt.Errorf("head %s of %s: %w", ref.Hash(), r.url, err)
	}
	r.headCommit, r.headKnown = c, true
	return c, nil
}

// moveHead notes that the tracking ref may have moved (a fetch, a push, a reopened cache),
// so that head reads it again. The caller holds the repo lock.
func (r *Repo) moveHead() { r.headKnown = false }

// fileAt returns the blob at path in commit c.
func (r *Repo) fileAt(c *object.Commit, path string) ([]byte, plumbing.Hash, error) {
	hash, err := r.entryAt(c.TreeHash, path)
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("%s at %.12s: %w", path, c.Hash, err)
	}
	entry := object.TreeEntry{Hash: hash}
	blob, err := object.GetBlob(r.store, entry.Hash)
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("%s at %.12s: %w", path, c.Hash, err)
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, plumbing.ZeroHash, err
	}
	defer rd.Close()
	data, err := io.ReadAll(rd)
	return data, entry.Hash, err
}

// blobAt returns the hash of the blob at path in c, or the zero hash when there is none.
func (r *Repo) blobAt(c *object.Commit, path string) plumbing.Hash {
	h, err := r.entryAt(c.TreeHash, path)
	if err != nil {
		return plumbing.ZeroHash
	}
	return h
}

// maxTreeBytes bounds the decoded-tree cache by the trees' estimated size in memory (a
// tree of a directory of 1,000 manifests takes about 100 KB); when full, it evicts trees
// at random.
const maxTreeBytes = 32 << 20

// treeSize estimates the memory a decoded tree holds.
func treeSize(t *object.Tree) int {
	n := 96
	for _, e := range t.Entries {
		n += len(e.Name) + 64 // the entry, its hash and mode, and the index's share
	}
	return n
}

// entryAt returns the hash of the entry at path below the tree root. Decoded trees are
// cached by hash (trees never change), so that reading one file of each of many rollouts at
// one head decodes each directory once instead of once per rollout.
func (r *Repo) entryAt(root plumbing.Hash, path string) (plumbing.Hash, error) {
	r.treesMu.Lock()
	defer r.treesMu.Unlock()
	h := root
	for part := range strings.SplitSeq(path, "/") {
		tree, err := r.tree(h)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		e, err := tree.FindEntry(part)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		h = e.Hash
	}
	return h, nil
}

// tree returns the decoded tree h; the caller holds treesMu.
func (r *Repo) tree(h plumbing.Hash) (*object.Tree, error) {
	if t, ok := r.trees.get(h); ok {
		return t, nil
	}
	t, err := object.GetTree(r.store, h)
	if err != nil {
		return nil, err
	}
	r.trees.put(h, t, treeSize(t))
	return t, nil
}

// parent returns c's first parent, or nil at a root or a shallow boundary.
func (r *Repo) parent(c *object.Commit) *object.Commit {
	if len(c.ParentHashes) == 0 {
		return nil
	}
	p, err := object.GetCommit(r.store, c.ParentHashes[0])
	if err != nil {
		return nil
	}
	return p
}

// loadSigner reads an armored OpenPGP private key.
func loadSigner(file string) (*openpgp.Entity, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	defer f.Close()
	ring, err := openpgp.ReadArmoredKeyRing(f)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", file, err)
	}
	for _, e := range ring {
		if e.PrivateKey != nil && !e.PrivateKey.Encrypted {
			return e, nil
		}
	}
	return nil, fmt.Errorf("signing key %s: no unencrypted private key", file)
}
