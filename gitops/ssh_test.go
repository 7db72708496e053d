package gitops

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

const sshdBin = "/usr/sbin/sshd"

// sshKey writes a fresh ed25519 private key (OpenSSH format, 0600) and returns its path
// and public key.
func sshKey(t *testing.T, dir, name string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := ssh.NewPublicKey(pub)
	return p, key
}

// sshServer is a real OpenSSH sshd serving one loopback port in inetd mode (one sshd -i
// per connection), with a throwaway host key and one authorized client key.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
	keyFile string // the client's private key
	user    string
	mu      sync.Mutex
	log     bytes.Buffer
}

// serveSSH starts sshd, or fails naming test/deps/sshd.sh when it is not installed.
func serveSSH(t *testing.T) *sshServer {
	t.Helper()
	needGit(t)
	if _, err := os.Stat(sshdBin); err != nil {
		t.Fatal("sshd not found: run test/deps/sshd.sh")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostFile, hostKey := sshKey(t, dir, "host_ed25519")
	keyFile, clientKey := sshKey(t, dir, "client_ed25519")
	writeFile(t, dir, "authorized_keys", string(ssh.MarshalAuthorizedKey(clientKey)))
	conf := writeFile(t, dir, "sshd_config", fmt.Sprintf(`HostKey %s
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile none
LogLevel VERBOSE
`, hostFile, filepath.Join(dir, "authorized_keys")))
	if out, err := exec.Command(sshdBin, "-t", "-f", conf).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s(run test/deps/sshd.sh)", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{addr: ln.Addr().String(), hostKey: hostKey, keyFile: keyFile, user: u.Username}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(conn, conf) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.log.String())
		}
	})
	return s
}

func (s *sshServer) serve(conn net.Conn, conf string) {
	defer conn.Close()
	f, err := conn.(*net.TCPConn).File()
	if err != nil {
		return
	}
	defer f.Close()
	var log bytes.Buffer
	cmd := exec.Command(sshdBin, "-i", "-e", "-f", conf)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, &log
	_ = cmd.Run()
	s.mu.Lock()
	s.log.Write(log.Bytes())
	s.mu.Unlock()
}

// knownHosts writes a known_hosts file pinning key for the server's address.
func (s *sshServer) knownHosts(t *testing.T, key ssh.PublicKey) string {
	host, port, _ := net.SplitHostPort(s.addr)
	line := fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(key))
	return writeFile(t, t.TempDir(), "known_hosts", line)
}

func TestSSHRemote(t *testing.T) {
	srv := serveSSH(t)
	rem := newRemote(t, sampleFiles(t))
	url := fmt.Sprintf("ssh://%s@%s%s", srv.user, srv.addr, rem.dir)

	t.Run("pinned host key", func(t *testing.T) {
		r := openRepo(t, url, func(c *Config) {
			c.Auth = Auth{SSHKeyFile: srv.keyFile, KnownHostsFile: srv.knownHosts(t, srv.hostKey)}
		})
		doc := parseDoc(t, sampleSpec)
		var shas []string
		for k := 1; k <= 3; k++ {
			shas = append(shas, step(t, r, doc, k))
		}
		if head := gitRun(t, rem.dir, "rev-parse", "main"); head != shas[2] {
			t.Fatalf("remote head = %s, want step 3's %s", head, shas[2])
		}
		for k, sha := range shas {
			checkStepCommit(t, rem.dir, sha, k+1, doc.Spec.WeightsAt(k))
		}
	})
	t.Run("host key mismatch", func(t *testing.T) {
		_, other := sshKey(t, t.TempDir(), "other")
		before := gitRun(t, rem.dir, "rev-parse", "main")
		_, err := Open(ctxT(t), Config{URL: url, Dir: t.TempDir(),
			Auth: Auth{SSHKeyFile: srv.keyFile, KnownHostsFile: srv.knownHosts(t, other)}})
		t.Logf("error: %v", err)
		if err == nil || !strings.Contains(err.Error(), "key mismatch") {
			t.Fatalf("Open with a wrong pinned host key = %v, want a host key mismatch", err)
		}
		if after := gitRun(t, rem.dir, "rev-parse", "main"); after != before {
			t.Errorf("the remote moved from %s to %s", before, after)
		}
	})
}
