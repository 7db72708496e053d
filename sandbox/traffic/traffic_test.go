package traffic

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/sandbox/greeter"
)

func TestInstanceOf(t *testing.T) {
	tests := map[string]string{
		"Hello, Jack! I'm from grpc-helloworld-py-v1-4f2a!": "grpc-helloworld-py-v1-4f2a",
		"Hello, Jack!":                   "",
		"Hello, I'm from a! I'm from b!": "a! I'm from b",
		"":                               "",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := InstanceOf(in); got != want {
				t.Errorf("InstanceOf(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

func TestField1(t *testing.T) {
	// field 2 (varint 150), then field 1 "hi"
	b := []byte{0x10, 0x96, 0x01, 0x0a, 0x02, 'h', 'i'}
	got, err := field1(b)
	if err != nil || got != "hi" {
		t.Fatalf("field1 = %q, %v", got, err)
	}
	if _, err := field1([]byte{0x0a, 0x05, 'h'}); err == nil {
		t.Fatal("a truncated message decoded")
	}
}

func FuzzField1(f *testing.F) {
	f.Add([]byte{0x0a, 0x02, 'h', 'i'})
	f.Add([]byte{0x10, 0x96, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = field1(b) // must not panic
	})
}

func startGreeter(t *testing.T, o greeter.Options) string {
	t.Helper()
	srv, err := greeter.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return lis.Addr().String()
}

func TestGeneratorCountsByInstanceAndCode(t *testing.T) {
	addr := startGreeter(t, greeter.Options{Instance: "grpc-helloworld-py-v2-x", ErrorRate: 0.5})
	g, err := New(Options{Target: addr, Rate: 200})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for g.Snapshot().Total.Calls < 40 && time.Now().Before(deadline) {
		<-tick.C
	}
	cancel()
	wg.Wait()
	s := g.Snapshot()
	ok, bad := s.Total.ByCode[codes.OK.String()], s.Total.ByCode[codes.Unavailable.String()]
	if s.Total.Calls < 40 || ok+bad != s.Total.Calls || ok < bad-1 || ok > bad+1 {
		t.Fatalf("after %d calls: %+v", s.Total.Calls, s.Total)
	}
	if d := cmp.Diff(map[string]uint64{"grpc-helloworld-py-v2-x": ok}, s.Total.ByInstance); d != "" {
		t.Errorf("by instance (-want +got):\n%s", d)
	}
	if s.Recent.Calls == 0 || s.Recent.Calls > s.Total.Calls {
		t.Errorf("recent %d calls of %d", s.Recent.Calls, s.Total.Calls)
	}
}

func TestRecentWindowForgets(t *testing.T) {
	g := &Generator{opts: Options{Window: 2 * time.Second}}
	base := time.Unix(1000, 0)
	g.record(base, "a", codes.OK)
	g.record(base.Add(time.Second), "b", codes.OK)
	g.record(base.Add(3*time.Second), "b", codes.Unavailable)
	g.mu.Lock()
	var recent Counts
	for _, b := range g.buckets {
		recent.add(b.Counts)
	}
	g.mu.Unlock()
	want := Counts{Calls: 1, ByInstance: map[string]uint64{"b": 1}, ByCode: map[string]uint64{"Unavailable": 1}}
	if d := cmp.Diff(want, recent); d != "" {
		t.Errorf("recent (-want +got):\n%s", d)
	}
	if g.total.Calls != 3 {
		t.Errorf("total %d calls, want 3", g.total.Calls)
	}
}
