package serve_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
)

// TestServeWebhookSecret: with git.webhookSecretFile set, POST /hooks/git with a wrong
// signature gets 401 and makes canaryd fetch nothing (a person's push stays unseen until
// the next poll, which the test sets an hour away); the right signature gets 202 and the
// push is seen.
func TestServeWebhookSecret(t *testing.T) {
	w := newWorld(t)
	secret := "hook-s3cret"
	write(t, filepath.Join(w.dir, "webhook-secret"), secret+"\n")
	cfg := readFile(t, w.config)
	cfg = strings.Replace(cfg, "  pollInterval: 1s\n", "  pollInterval: 1h\n  webhookSecretFile: "+filepath.Join(w.dir, "webhook-secret")+"\n", 1)
	write(t, w.config, cfg)
	w.serve()
	w.waitPhase(90*time.Second, rollout.Succeeded) // canaryd pushes (and fetches) no more

	// A person adds an invalid spec; canaryd learns of it only through a fetch.
	w.pushBroken([]broken{{name: "invalid", spec: func(w *world) string {
		return strings.Replace(w.specAs("invalid", "grpc-vs-i", "deploy/sample/rules.yaml", ""), "[0, 40, 100]", "[0, 140, 100]", 1)
	}}})
	body := `{"ref":"refs/heads/main"}`
	post := func(sig string) int {
		req, _ := http.NewRequest("POST", "http://"+w.listen+"/hooks/git", strings.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	m := hmac.New(sha256.New, []byte("wrong"))
	m.Write([]byte(body))
	if code := post(hex.EncodeToString(m.Sum(nil))); code != http.StatusUnauthorized {
		t.Fatalf("wrong signature: status %d, want 401", code)
	}
	// The handler logs the refusal and returns; a trigger would have logged "webhook push"
	// first. The log reaches the test through a pipe, so wait for the refusal's line.
	w.eventually(10*time.Second, "the refusal logged", func() (bool, string) {
		return strings.Contains(w.logText(), "webhook with a bad signature"), ""
	})
	if strings.Contains(w.logText(), "webhook push") {
		t.Fatalf("a webhook with a wrong signature triggered a fetch")
	}
	if _, listed := w.statusOf("invalid"); listed {
		t.Fatalf("a webhook with a wrong signature made canaryd fetch")
	}
	m = hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	if code := post(hex.EncodeToString(m.Sum(nil))); code != http.StatusAccepted {
		t.Fatalf("right signature: status %d, want 202", code)
	}
	w.eventually(30*time.Second, "the pushed spec seen", func() (bool, string) {
		r, ok := w.statusOf("invalid")
		return ok && r.Phase == rollout.Invalid, string(r.Phase)
	})
	if strings.Contains(w.logText(), secret) {
		t.Error("the webhook secret reached the log")
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
