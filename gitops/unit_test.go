package gitops

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/golden"
)

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://user:tok3n@github.com/acme/deploy.git", "https://REDACTED@github.com/acme/deploy.git"},
		{"https://ghp_secret@github.com/acme/deploy.git", "https://REDACTED@github.com/acme/deploy.git"},
		{"https://github.com/acme/deploy.git", "https://github.com/acme/deploy.git"},
		{"ssh://git@github.com/acme/deploy.git", "ssh://git@github.com/acme/deploy.git"},
		{"ssh://git:pw@github.com/acme/deploy.git", "ssh://git:REDACTED@github.com/acme/deploy.git"},
		{"git@github.com:acme/deploy.git", "git@github.com:acme/deploy.git"},
		{"file:///srv/git/deploy.git", "file:///srv/git/deploy.git"},
		{"https://a:b%zz@host/x", "https://REDACTED@host/x"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestErrorsHideCredentials(t *testing.T) {
	needGit(t)
	rem := newRemote(t, sampleFiles(t))
	base := serveHTTP(t, rem.root, "canaryd", "right-token")
	tok := writeFile(t, t.TempDir(), "token", "wrong-token-value\n")
	urls := []string{
		strings.Replace(base, "http://", "http://canaryd:url-secret-pw@", 1) + "/deploy.git",
		base + "/deploy.git",
	}
	for _, u := range urls {
		_, err := Open(ctxT(t), Config{URL: u, Dir: t.TempDir(), Auth: Auth{TokenFile: tok, Username: "canaryd"}})
		if err == nil {
			t.Fatalf("Open with a wrong password succeeded")
		}
		for _, secret := range []string{"url-secret-pw", "wrong-token-value"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks %q: %v", secret, err)
			}
		}
		t.Logf("error: %v", err)
		if !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("error does not name the remote: %v", err)
		}
	}
}

func TestSSHAuthConfig(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, _, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewPublicKey(hostPub)
	otherKey, _ := ssh.NewPublicKey(otherPub)
	known := writeFile(t, dir, "known_hosts", "[127.0.0.1]:2222 "+string(ssh.MarshalAuthorizedKey(hostKey)))
	url := "ssh://git@127.0.0.1:2222/acme/deploy.git"

	m, _, err := Auth{SSHKeyFile: keyFile, KnownHostsFile: known}.method(url)
	if err != nil {
		t.Fatalf("method: %v", err)
	}
	keys := m.(*gitssh.PublicKeys)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
	if err := keys.HostKeyCallback("127.0.0.1:2222", addr, hostKey); err != nil {
		t.Errorf("pinned host key refused: %v", err)
	}
	if err := keys.HostKeyCallback("127.0.0.1:2222", addr, otherKey); err == nil {
		t.Error("a host key that is not pinned was accepted")
	}
	if keys.User != "git" {
		t.Errorf("user = %q, want git", keys.User)
	}
	for name, a := range map[string]Auth{
		"no known_hosts": {SSHKeyFile: keyFile},
		"no key":         {KnownHostsFile: known},
		"missing key":    {SSHKeyFile: filepath.Join(dir, "nope"), KnownHostsFile: known},
	} {
		if _, _, err := a.method(url); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: err = %v, want ErrAuth", name, err)
		}
	}
}

func TestWebhook(t *testing.T) {
	secret := []byte("hook-secret")
	var kicks atomic.Int32
	srv := httptest.NewServer(NewWebhook("main", secret, func() { kicks.Add(1) }, nil))
	t.Cleanup(srv.Close)
	sign := func(body string) string {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(body))
		return hex.EncodeToString(m.Sum(nil))
	}
	push := `{"ref":"refs/heads/main","after":"abc"}`
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		body    string
		code    int
		kicked  bool
	}{
		{"github push", "POST", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(push)}, push, 202, true},
		{"gitea push", "POST", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(push)}, push, 202, true},
		{"gitlab push", "POST", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "hook-secret"}, push, 202, true},
		{"bad signature", "POST", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("other")}, push, 401, false},
		{"no signature", "POST", map[string]string{"X-GitHub-Event": "push"}, push, 401, false},
		{"other branch", "POST", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(`{"ref":"refs/heads/dev"}`)}, `{"ref":"refs/heads/dev"}`, 200, false},
		{"ping", "POST", map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign(`{}`)}, `{}`, 200, false},
		{"not json", "POST", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("x")}, "x", 400, false},
		{"get", "GET", nil, "", 405, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := kicks.Load()
			req, _ := http.NewRequest(tt.method, srv.URL, strings.NewReader(tt.body))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.code)
			}
			if got := kicks.Load() > before; got != tt.kicked {
				t.Errorf("triggered = %v, want %v", got, tt.kicked)
			}
		})
	}
}

func TestMessageGolden(t *testing.T) {
	doc := parseDoc(t, sampleSpec)
	commits := []rollout.Commit{
		{Kind: rollout.Forward, Run: 1, Step: 2, Steps: 3, Weights: rollout.CanaryAt(60)},
		{Kind: rollout.Rollback, Run: 1, Weights: rollout.CanaryAt(0), Reason: "grpc-success-rate 0.91 < 0.99\ntwice"},
		{Kind: rollout.Abort, Run: 2, Weights: rollout.CanaryAt(0), Actor: "alice", Reason: "bad build"},
		{Kind: rollout.Promote, Run: 3, Step: 3, Steps: 3, Weights: rollout.CanaryAt(100), Actor: "bob"},
	}
	var b strings.Builder
	for _, c := range commits {
		msg := Message(doc, c)
		b.WriteString(msg + "----\n")
		if got := kindOf(msg, doc.Name()); got != c.Kind {
			t.Errorf("kindOf(%q) = %s, want %s", msg, got, c.Kind)
		}
		tr, own := ownedBy(msg, doc.Name())
		if !own || tr[TrailerWeights] != doc.Spec.Describe(c.Weights) {
			t.Errorf("trailers of %q = %v", msg, tr)
		}
	}
	// A batch commit of two rollouts, one of them with a reason.
	other := *doc
	other.Metadata.Name = "grpc-helloworld-go"
	moves := []moveOf{{doc: doc, c: commits[0]}, {doc: &other, c: rollout.Commit{Kind: rollout.Pause, Run: 2,
		Step: 1, Steps: 3, Weights: rollout.CanaryAt(20), Actor: "alice"}}}
	batch := batchMessage(moves)
	b.WriteString(batch + "----\n")
	for _, m := range moves {
		// kindOf reads the rollout's own sentence, as it does for commits without Rollout-Kind.
		if _, own := ownedBy(batch, m.doc.Name()); !own || kindOf(batch, m.doc.Name()) != m.c.Kind {
			t.Errorf("the batch message does not read back %s's %s", m.doc.Name(), m.c.Kind)
		}
	}
	golden.Check(t, filepath.Join("testdata", "messages.golden"), []byte(b.String()))
	if _, own := ownedBy("Revert \"grpc-helloworld-py: step 2/3\"\n\nThis reverts commit abc.\n", doc.Name()); own {
		t.Error("a revert's message counts as canaryd's")
	}
}

// FuzzMessage checks that any reason and actor yield a message whose trailers read back
// as written, and that the trailer parser takes any text.
func FuzzMessage(f *testing.F) {
	f.Add("grpc-success-rate 0.91 < 0.99", "alice", 2, 1, 40)
	f.Add("line one\n\nRollout: other\nRollout-Weights: v1=0,v2=100", "", 1, 0, 0)
	f.Add("", "bob: by hand", 3, 3, 100)
	doc := parseDoc(f, sampleSpec)
	f.Fuzz(func(t *testing.T, reason, actor string, run, step, canary int) {
		_ = sections(reason) // any text parses
		c := rollout.Commit{Kind: rollout.Forward, Run: run, Step: step, Steps: 3,
			Weights: rollout.CanaryAt(((canary % 101) + 101) % 101), Reason: reason, Actor: actor}
		msg := Message(doc, c)
		tr, own := ownedBy(msg, doc.Name())
		if !own {
			t.Fatalf("message not recognised as canaryd's:\n%s", msg)
		}
		if w, err := doc.Spec.ParseDescribed(tr[TrailerWeights]); err != nil || w != c.Weights {
			t.Fatalf("weights trailer %q = %v, %v; want %v", tr[TrailerWeights], w, err, c.Weights)
		}
		if tr[TrailerRun] != strconv.Itoa(run) || tr[TrailerReason] != oneLine(reason) || tr[TrailerActor] != oneLine(actor) {
			t.Fatalf("trailers %v do not read back run %d, reason %q, actor %q", tr, run, reason, actor)
		}
		if subj, _, _ := strings.Cut(msg, "\n"); !strings.HasPrefix(subj, doc.Name()+": ") {
			t.Fatalf("subject %q", subj)
		}
		// In a batch commit each rollout's trailers and sentence read back as its own.
		other := *doc
		other.Metadata.Name = doc.Name() + "-b"
		oc := rollout.Commit{Kind: rollout.Abort, Run: run + 1, Weights: rollout.CanaryAt(0), Reason: actor, Actor: reason}
		batch := batchMessage([]moveOf{{doc: doc, c: c}, {doc: &other, c: oc}})
		for _, m := range []moveOf{{doc: doc, c: c}, {doc: &other, c: oc}} {
			tr, own := ownedBy(batch, m.doc.Name())
			if !own || tr[TrailerRun] != strconv.Itoa(m.c.Run) || tr[TrailerReason] != oneLine(m.c.Reason) || tr[TrailerKind] != m.c.Kind.TrailerKind() {
				t.Fatalf("batch trailers of %s: %v, %t; want run %d, reason %q:\n%s", m.doc.Name(), tr, own, m.c.Run, m.c.Reason, batch)
			}
			if got, want := sentenceOf(batch, m.doc.Name()), subject(m.doc, m.c); got != want {
				t.Fatalf("sentence of %s = %q, want %q", m.doc.Name(), got, want)
			}
		}
		if n := len(sections(batch)); n != 2 {
			t.Fatalf("batch has %d sections, want 2:\n%s", n, batch)
		}
	})
}

// TestWebhookUnsignedIsRateLimited: without a secret a push only triggers a fetch, at most
// once per UnsignedInterval; requests in between get 429 and trigger nothing.
func TestWebhookUnsignedIsRateLimited(t *testing.T) {
	var kicks atomic.Int32
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := httptest.NewServer(newWebhook("main", nil, func() { kicks.Add(1) }, nil, clock))
	t.Cleanup(srv.Close)
	post := func() int {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"ref":"refs/heads/main"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != http.StatusAccepted || kicks.Load() != 1 {
		t.Fatalf("first unsigned push: status %d, %d triggers; want 202 and 1", code, kicks.Load())
	}
	for range 5 {
		if code := post(); code != http.StatusTooManyRequests {
			t.Errorf("unsigned push within %s: status %d, want 429", UnsignedInterval, code)
		}
	}
	if kicks.Load() != 1 {
		t.Errorf("%d triggers after the rate-limited pushes, want 1", kicks.Load())
	}
	mu.Lock()
	now = now.Add(UnsignedInterval)
	mu.Unlock()
	if code := post(); code != http.StatusAccepted || kicks.Load() != 2 {
		t.Errorf("unsigned push after %s: status %d, %d triggers; want 202 and 2", UnsignedInterval, code, kicks.Load())
	}
}
