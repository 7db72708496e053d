package rollout

import (
	"strings"
	"testing"
)

func TestEgressTargets(t *testing.T) {
	def, err := CompileEgress(Egress{})
	if err != nil {
		t.Fatal(err)
	}
	strict, err := CompileEgress(Egress{Allow: []string{"10.0.0.0/8", "127.0.0.1", "*.svc.cluster.local", "prometheus.istio-system"},
		Deny: []string{"10.9.0.0/16", "*.internal.example"}})
	if err != nil {
		t.Fatal(err)
	}
	optIn, err := CompileEgress(Egress{Allow: []string{"169.254.10.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pol    *EgressPolicy
		host   string
		refuse string // "" when allowed
	}{
		{def, "169.254.169.254", "link-local or cloud-metadata"},
		{def, "[fd00:ec2::254]", "link-local or cloud-metadata"},
		{def, "fd00:ec2::254", "link-local or cloud-metadata"},
		{def, "fe80::1%eth0", "link-local"},
		{def, "::ffff:169.254.169.254", "link-local"},
		{def, "metadata.google.internal", "cloud metadata service"},
		{def, "Metadata.Google.Internal.", "cloud metadata service"},
		{def, "127.0.0.1", ""},
		{def, "istio-ingressgateway.istio-system", ""},
		{strict, "10.1.2.3", ""},
		{strict, "10.9.1.1", "egress.deny"},
		{strict, "192.168.1.1", "no CIDR of egress.allow"},
		{strict, "grpc.default.svc.cluster.local", ""},
		{strict, "prometheus.istio-system", ""},
		{strict, "evil.example.com", "no host pattern"},
		{strict, "a.internal.example", "egress.deny"},
		{strict, "169.254.169.254", "link-local"},
		{optIn, "169.254.10.5", ""},
		{optIn, "169.254.169.254", "link-local"},
	}
	for _, tt := range tests {
		got := tt.pol.Target(tt.host)
		if (tt.refuse == "") != (got == "") || !strings.Contains(got, tt.refuse) {
			t.Errorf("Target(%q) = %q, want refusal containing %q", tt.host, got, tt.refuse)
		}
	}
	if _, err := CompileEgress(Egress{Allow: []string{"10.0.0.0/33", "a b"}, Files: []string{"rel"}}); err == nil ||
		!strings.Contains(err.Error(), "egress.allow[0]") || !strings.Contains(err.Error(), "egress.allow[1]") ||
		!strings.Contains(err.Error(), "egress.files[0]") {
		t.Errorf("bad rules: err = %v, want each named", err)
	}
}

func TestEgressCheckPositions(t *testing.T) {
	spec := base + `  analysis:
    prometheus: {address: "http://[fd00:ec2::254]:9090"}
    metrics:
      - template: grpc-success-rate
        min: 0.99
  probe:
    grpcurl: -cacert /etc/ssl/ca.pem -protoset ../x.pb 169.254.169.254:80 helloworld.Greeter/SayHello
`
	docs, err := Parse("r.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := CompileEgress(Egress{Files: []string{"/etc/canaryd/protos"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pol.Check(docs[0]) {
		got = append(got, p.String())
	}
	want := []string{
		"r.yaml:14:27: spec.analysis.prometheus.address: egress refused: fd00:ec2::254 is a link-local",
		"r.yaml:19:14: spec.probe.grpcurl: egress refused: 169.254.169.254 is a link-local",
		`r.yaml:19:14: spec.probe.grpcurl: file refused: "/etc/ssl/ca.pem" is in no directory of egress.files`,
		`r.yaml:19:14: spec.probe.grpcurl: file refused: "../x.pb" is relative`,
	}
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
	ok, _ := CompileEgress(Egress{Files: []string{"/etc/ssl", "/"}})
	if why := ok.File("/etc/ssl/../passwd"); why != "" {
		t.Logf("%s", why) // "/" allows it; the point is the path is cleaned first
	}
	narrow, _ := CompileEgress(Egress{Files: []string{"/etc/ssl"}})
	if why := narrow.File("/etc/ssl/../passwd"); why == "" {
		t.Error("/etc/ssl/../passwd passed a policy that allows only /etc/ssl")
	}
	if why := narrow.File("/etc/sslx/a"); why == "" {
		t.Error("/etc/sslx/a passed a policy that allows only /etc/ssl")
	}
}

// TestEgressPinnedProbeAddresses: the addresses a probe pins its calls to are targets too.
func TestEgressPinnedProbeAddresses(t *testing.T) {
	spec := base + `  probe:
    grpcurl: -plaintext gw:8080 helloworld.Greeter/SayHello
    canaryAddress: 169.254.169.254:50051
    stableAddress: 10.0.0.7:50051
`
	docs, err := Parse("r.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := CompileEgress(Egress{})
	if err != nil {
		t.Fatal(err)
	}
	ps := pol.Check(docs[0])
	if len(ps) != 1 || ps[0].Field != "spec.probe.canaryAddress" || !strings.Contains(ps[0].Msg, "link-local") {
		t.Errorf("problems %v, want the canary address refused alone", ps)
	}
}
