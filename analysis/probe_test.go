package analysis

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/sandbox/greeter"
)

// serveGreeter runs a greeter on addr ("127.0.0.1:0" for any port) until the test ends and
// returns it with the address it listens on.
func serveGreeter(t testing.TB, o greeter.Options, addr string) (*greeter.Server, string) {
	t.Helper()
	srv, err := greeter.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("greeter: %v", err)
		}
	})
	return srv, lis.Addr().String()
}

// probeSpec builds a probe as Parse would from a grpcurl line and the other fields.
func probeSpec(t testing.TB, line, expect string, count int, minSuccess float64, timeout time.Duration) *rollout.Probe {
	t.Helper()
	cmd, err := rollout.ParseGRPCurl(line)
	if err != nil {
		t.Fatalf("ParseGRPCurl(%q): %v", line, err)
	}
	return &rollout.Probe{
		GRPCurl: line, Expect: expect, Count: count, MinSuccess: &minSuccess,
		Timeout: rollout.Duration{Duration: timeout, Set: true}, Command: cmd,
	}
}

func newProbe(t testing.TB) *Probe {
	p := NewProbe(nil, nil)
	t.Cleanup(func() { p.Close() })
	return p
}

func writeProtoset(t testing.TB) string {
	t.Helper()
	b, err := greeter.Protoset()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "helloworld.protoset")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// codesOf lists the code of every call of a verdict.
func codesOf(v rollout.Verdict) []string {
	var cs []string
	for _, ev := range v.Evidence {
		cs = append(cs, ev.Code)
	}
	return cs
}

// helloworldProto is gRPC's examples/helloworld/helloworld.proto, for -proto.
const helloworldProto = `syntax = "proto3";
package helloworld;
service Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} }
message HelloRequest { string name = 1; }
message HelloReply { string message = 1; }
`

func TestProbeCheck(t *testing.T) {
	protoset := writeProtoset(t)
	protoDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(protoDir, "helloworld.proto"), []byte(helloworldProto), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		greeter    greeter.Options
		flags      string // before the address
		method     string
		expect     string
		minSuccess float64
		timeout    time.Duration
		want       rollout.Result
		wantCodes  []string
	}{
		{name: "reflection passes", greeter: greeter.Options{Reflection: true}, expect: "Hello, Jack!",
			want: rollout.Pass, wantCodes: fives("OK")},
		{name: "reflection v1alpha only passes", greeter: greeter.Options{Reflection: true, OnlyV1Alpha: true}, expect: "Hello, Jack!",
			want: rollout.Pass, wantCodes: fives("OK")},
		{name: "regex expect passes", greeter: greeter.Options{Reflection: true}, expect: `/^\{"message":"Hello, Jack! I'm from v2-[a-z]+!"\}$/`,
			want: rollout.Pass, wantCodes: fives("OK")},
		{name: "wrong expect fails", greeter: greeter.Options{Reflection: true}, expect: "Hello, Jill!",
			want: rollout.Fail, wantCodes: fives("OK")},
		{name: "half the calls fail", greeter: greeter.Options{Reflection: true, ErrorRate: 0.5, ErrorCode: codes.Unavailable},
			expect: "Hello", want: rollout.Fail, wantCodes: []string{"OK", "UNAVAILABLE", "OK", "UNAVAILABLE", "OK"}},
		{name: "half fail but minSuccess 0.6 is met", greeter: greeter.Options{Reflection: true, ErrorRate: 0.5, ErrorCode: codes.Internal},
			expect: "Hello", minSuccess: 0.6, want: rollout.Pass, wantCodes: []string{"OK", "INTERNAL", "OK", "INTERNAL", "OK"}},
		{name: "deadline shorter than latency fails", greeter: greeter.Options{Reflection: true, Latency: 300 * time.Millisecond},
			expect: "Hello", timeout: 50 * time.Millisecond, want: rollout.Fail, wantCodes: fives("DEADLINE_EXCEEDED")},
		{name: "-max-time shorter than latency fails", greeter: greeter.Options{Reflection: true, Latency: 300 * time.Millisecond},
			flags: "-max-time 0.05", expect: "Hello", want: rollout.Fail, wantCodes: fives("DEADLINE_EXCEEDED")},
		{name: "protoset without reflection passes", greeter: greeter.Options{},
			flags: "-protoset " + protoset, expect: "Hello, Jack!", want: rollout.Pass, wantCodes: fives("OK")},
		{name: "proto source without reflection passes", greeter: greeter.Options{},
			flags: "-import-path " + protoDir + " -proto helloworld.proto", expect: "Hello, Jack!", want: rollout.Pass, wantCodes: fives("OK")},
		{name: "missing proto source is an error", greeter: greeter.Options{Reflection: true},
			flags: "-import-path " + protoDir + " -proto nothere.proto", expect: "Hello", want: rollout.Error},
		{name: "no reflection and no protoset is an error", greeter: greeter.Options{},
			expect: "Hello", want: rollout.Error},
		{name: "unknown method is an error", greeter: greeter.Options{Reflection: true}, method: "helloworld.Greeter/SayBye",
			expect: "Hello", want: rollout.Error},
		{name: "unknown service is an error", greeter: greeter.Options{Reflection: true}, method: "helloworld.Nobody/SayHello",
			expect: "Hello", want: rollout.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.greeter.Instance = "v2-abc"
			_, addr := serveGreeter(t, tt.greeter, "127.0.0.1:0")
			method := tt.method
			if method == "" {
				method = greeter.FullMethod
			}
			line := strings.TrimSpace(`-d '{"name":"Jack"}' -plaintext ` + tt.flags + " " + addr + " " + method)
			if tt.minSuccess == 0 {
				tt.minSuccess = 1
			}
			if tt.timeout == 0 {
				tt.timeout = 2 * time.Second
			}
			v := newProbe(t).Check(t.Context(), probeSpec(t, line, tt.expect, 5, tt.minSuccess, tt.timeout))
			if v.Result != tt.want {
				t.Fatalf("result %s, want %s: %s", v.Result, tt.want, v.Reason)
			}
			if d := cmp.Diff(tt.wantCodes, codesOf(v)); d != "" {
				t.Errorf("codes (-want +got):\n%s", d)
			}
			if v.Gate != rollout.ProbeGate || v.Reason == "" || v.Time.IsZero() {
				t.Errorf("verdict lacks gate, reason or time: %+v", v)
			}
			for _, ev := range v.Evidence {
				if ev.Code == "OK" && (ev.Backend != "v2-abc" || ev.Reply != `{"message":"Hello, Jack! I'm from v2-abc!"}`) {
					t.Errorf("evidence of an OK call: backend %q reply %q", ev.Backend, ev.Reply)
				}
				if !strings.Contains(ev.Query, addr) || ev.Latency <= 0 {
					t.Errorf("evidence lacks the invocation or latency: %+v", ev)
				}
			}
		})
	}
}

func fives(code string) []string { return []string{code, code, code, code, code} }

func TestProbeReconnectsToARestartedServer(t *testing.T) {
	for _, checkWhileDown := range []bool{false, true} {
		t.Run(map[bool]string{false: "restart between checks", true: "check while down"}[checkWhileDown], func(t *testing.T) {
			first, err := greeter.NewServer(greeter.Options{Instance: "first", Reflection: true})
			if err != nil {
				t.Fatal(err)
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- first.Serve(lis) }()
			addr := lis.Addr().String()
			p := newProbe(t)
			spec := probeSpec(t, `-d '{"name":"Jack"}' -plaintext `+addr+" helloworld.Greeter/SayHello", "Hello, Jack!", 3, 1, 2*time.Second)
			if v := p.Check(t.Context(), spec); v.Result != rollout.Pass {
				t.Fatalf("first check: %s: %s", v.Result, v.Reason)
			}
			first.Stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if checkWhileDown {
				v := p.Check(t.Context(), spec)
				if v.Result == rollout.Pass {
					t.Fatalf("check while the server is down passed: %+v", v)
				}
			}
			serveGreeter(t, greeter.Options{Instance: "second", Reflection: true}, addr)
			v := p.Check(t.Context(), spec)
			if v.Result != rollout.Pass {
				t.Fatalf("check after restart: %s: %s %+v", v.Result, v.Reason, v.Evidence)
			}
			if got := v.Evidence[0].Backend; got != "second" {
				t.Errorf("answered by %q, want the restarted server", got)
			}
		})
	}
}

func TestProbeReusesOneConnection(t *testing.T) {
	_, addr := serveGreeter(t, greeter.Options{Instance: "v1", Reflection: true}, "127.0.0.1:0")
	p := newProbe(t)
	spec := probeSpec(t, `-plaintext `+addr+" helloworld.Greeter.SayHello", "Hello, !", 2, 1, time.Second)
	for range 3 {
		if v := p.Check(t.Context(), spec); v.Result != rollout.Pass {
			t.Fatalf("%s: %s", v.Result, v.Reason)
		}
	}
	p.mu.Lock()
	n := len(p.conns)
	p.mu.Unlock()
	if n != 1 {
		t.Errorf("%d cached connections after three checks of one target, want 1", n)
	}
}

func TestProbeCannotRun(t *testing.T) {
	_, addr := serveGreeter(t, greeter.Options{Instance: "v1", Reflection: true}, "127.0.0.1:0")
	tests := []struct {
		name string
		spec *rollout.Probe
	}{
		{"bad command line", &rollout.Probe{GRPCurl: "-bogus " + addr + " helloworld.Greeter/SayHello"}},
		{"bad expect", &rollout.Probe{GRPCurl: "-plaintext " + addr + " helloworld.Greeter/SayHello", Expect: "/(/"}},
		{"request does not fit the method", probeSpec(t, `-d '{"nom":"x"}' -plaintext `+addr+" helloworld.Greeter/SayHello", "", 1, 1, time.Second)},
		{"missing protoset", probeSpec(t, `-plaintext -protoset /nonexistent.protoset `+addr+" helloworld.Greeter/SayHello", "", 1, 1, time.Second)},
		{"missing CA file", probeSpec(t, `-cacert /nonexistent.pem `+addr+" helloworld.Greeter/SayHello", "", 1, 1, time.Second)},
		{"nothing listening", probeSpec(t, `-plaintext 127.0.0.1:1 helloworld.Greeter/SayHello`, "", 1, 1, time.Second)},
		{"no probe", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newProbe(t).Check(t.Context(), tt.spec)
			if v.Result != rollout.Error || v.Reason == "" {
				t.Errorf("got %s (%q), want an error with a reason", v.Result, v.Reason)
			}
		})
	}
	t.Run("closed", func(t *testing.T) {
		p := NewProbe(nil, nil)
		p.Close()
		v := p.Check(t.Context(), probeSpec(t, `-plaintext `+addr+" helloworld.Greeter/SayHello", "", 1, 1, time.Second))
		if v.Result != rollout.Error || !strings.Contains(v.Reason, ErrClosed.Error()) {
			t.Errorf("after Close: %s %q", v.Result, v.Reason)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		v := newProbe(t).Check(ctx, probeSpec(t, `-plaintext `+addr+" helloworld.Greeter/SayHello", "", 1, 1, time.Second))
		if v.Result != rollout.Error {
			t.Errorf("cancelled check: %s %q", v.Result, v.Reason)
		}
	})
}

func TestDisplayCommandHidesHeaderValues(t *testing.T) {
	cmd, err := rollout.ParseGRPCurl(`-H 'authorization: Bearer s3cret' -rpc-header 'x-token: abc' -d '{"name":"J"}' -insecure -authority a.example h:443 p.S/M`)
	if err != nil {
		t.Fatal(err)
	}
	got := displayCommand(cmd)
	want := `grpcurl -d '{"name":"J"}' -insecure -H 'authorization: <redacted>' -rpc-header 'x-token: <redacted>' -authority a.example h:443 p.S/M`
	if got != want {
		t.Errorf("displayCommand:\n got %s\nwant %s", got, want)
	}
}

// grpcurlCLI returns the path of the real grpcurl, failing the test when it is missing.
func grpcurlCLI(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the grpcurl CLI; skipped with -short")
	}
	path, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Fatal("grpcurl CLI not found: run test/deps/grpcurl.sh")
	}
	return path
}

// TestProbeReplyMatchesGRPCurlCLI checks that the probe prints a reply exactly as grpcurl
// v1.9.4 does for the same command line.
func TestProbeReplyMatchesGRPCurlCLI(t *testing.T) {
	bin := grpcurlCLI(t)
	protoset := writeProtoset(t)
	_, addr := serveGreeter(t, greeter.Options{Instance: "grpc-helloworld-py-v2-7d9", Reflection: true}, "127.0.0.1:0")
	for _, args := range []string{
		`-d '{"name":"Jack"}' -plaintext ADDR helloworld.Greeter/SayHello`,
		`-plaintext ADDR helloworld.Greeter/SayHello`,
		`-d '{"name":"Ünïcode \"quoted\""}' -plaintext -protoset PROTOSET ADDR helloworld.Greeter.SayHello`,
		`-H 'x-test: 1' -d '{}' -plaintext -max-time 2 ADDR helloworld.Greeter/SayHello`,
	} {
		line := strings.NewReplacer("ADDR", addr, "PROTOSET", protoset).Replace(args)
		t.Run(args, func(t *testing.T) {
			cmd, err := rollout.ParseGRPCurl(line)
			if err != nil {
				t.Fatal(err)
			}
			c, err := newProbe(t).Call(t.Context(), cmd, 2*time.Second)
			if err != nil || c.Code != codes.OK {
				t.Fatalf("probe: %v %v %s", err, c.Code, c.Message)
			}
			words, err := splitForExec(line)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.CommandContext(t.Context(), bin, words...).Output()
			if err != nil {
				t.Fatalf("grpcurl %s: %v", line, err)
			}
			if d := cmp.Diff(string(out), c.Reply+"\n"); d != "" {
				t.Errorf("reply differs from grpcurl's (-cli +probe):\n%s", d)
			}
		})
	}
}

// splitForExec splits a probe line into arguments as a POSIX shell does, so that the CLI
// gets exactly the words the probe parsed.
func splitForExec(line string) ([]string, error) {
	b, err := exec.Command("sh", "-c", "set -- "+line+`; printf '%s\0' "$@"`).Output()
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
}

// TestFailedCallsNamesTheCodes: a failing probe's reason tallies what its failed calls
// returned, most frequent first, so that it names the status codes.
func TestFailedCallsNamesTheCodes(t *testing.T) {
	evs := []rollout.Evidence{{Code: "OK", Value: 1}, {Code: "UNAVAILABLE"}, {Code: "OK"}, {Code: "UNAVAILABLE"},
		{Code: "DEADLINE_EXCEEDED"}, {Code: "UNAVAILABLE"}}
	if got, want := failedCalls(evs), "UNAVAILABLE ×3, a reply that does not match ×1, DEADLINE_EXCEEDED ×1"; got != want {
		t.Errorf("failedCalls = %q, want %q", got, want)
	}
}
