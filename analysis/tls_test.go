package analysis

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/greeter"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and greeter.test, and a client
// certificate, all written as PEM files.
type testPKI struct {
	dir                       string
	caFile, certFile, keyFile string // the client's
	pool                      *x509.CertPool
	server                    tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), pool: x509.NewCertPool()}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "canaryd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool.AddCert(ca)
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", caDER)
	srvDER, srvKey := issue(t, ca, caKey, 2, &x509.Certificate{
		Subject: pkix.Name{CommonName: "greeter"}, DNSNames: []string{"greeter.test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	p.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
	cliDER, cliKey := issue(t, ca, caKey, 3, &x509.Certificate{
		Subject: pkix.Name{CommonName: "probe"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	p.certFile = p.write(t, "client.pem", "CERTIFICATE", cliDER)
	keyDER, err := x509.MarshalECPrivateKey(cliKey)
	if err != nil {
		t.Fatal(err)
	}
	p.keyFile = p.write(t, "client-key.pem", "EC PRIVATE KEY", keyDER)
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func (p *testPKI) write(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestProbeTLS(t *testing.T) {
	pki := newTestPKI(t)
	_, addr := serveGreeter(t, greeter.Options{Instance: "tls", Reflection: true,
		TLS: &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}}, "127.0.0.1:0")
	_, mtlsAddr := serveGreeter(t, greeter.Options{Instance: "mtls", Reflection: true,
		TLS: &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}}, "127.0.0.1:0")
	protoset := writeProtoset(t)
	tests := []struct {
		name, flags, addr string
		want              rollout.Result
	}{
		{"-insecure skips verification", "-insecure", addr, rollout.Pass},
		{"-cacert verifies the server", "-cacert " + pki.caFile, addr, rollout.Pass},
		{"-servername names the certificate's host", "-cacert " + pki.caFile + " -servername greeter.test", addr, rollout.Pass},
		{"-authority names the certificate's host", "-cacert " + pki.caFile + " -authority greeter.test", addr, rollout.Pass},
		{"a wrong -servername is refused", "-cacert " + pki.caFile + " -servername other.test", addr, rollout.Error},
		{"an unknown CA is refused", "", addr, rollout.Error},
		{"an unknown CA fails the calls with a protoset", "-protoset " + protoset, addr, rollout.Fail},
		{"-cert and -key pass mutual TLS", "-cacert " + pki.caFile + " -cert " + pki.certFile + " -key " + pki.keyFile, mtlsAddr, rollout.Pass},
		{"no client certificate fails mutual TLS", "-cacert " + pki.caFile, mtlsAddr, rollout.Error},
		{"plaintext to a TLS server is refused", "-plaintext", addr, rollout.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := `-d '{"name":"Jack"}' ` + tt.flags + " " + tt.addr + " helloworld.Greeter/SayHello"
			v := newProbe(t).Check(t.Context(), probeSpec(t, line, "Hello, Jack!", 2, 1, 2*time.Second))
			if v.Result != tt.want {
				t.Fatalf("result %s, want %s: %s %+v", v.Result, tt.want, v.Reason, v.Evidence)
			}
		})
	}
}
