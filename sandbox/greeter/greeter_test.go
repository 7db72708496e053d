package greeter

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/dynamicpb"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// start serves a greeter on 127.0.0.1:0 and returns it with a client connection to it.
func start(t *testing.T, o Options) (*Server, *grpc.ClientConn) {
	t.Helper()
	srv, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, cc
}

func sayHello(ctx context.Context, srv *Server, cc *grpc.ClientConn, name string) (string, codes.Code) {
	req := dynamicpb.NewMessage(srv.schema.request)
	req.Set(srv.schema.name, protoreflectString(name))
	reply := dynamicpb.NewMessage(srv.schema.reply)
	if err := cc.Invoke(ctx, "/"+FullMethod, req, reply); err != nil {
		return "", status.Code(err)
	}
	return reply.Get(srv.schema.message).String(), codes.OK
}

func TestSayHello(t *testing.T) {
	srv, cc := start(t, Options{Instance: "grpc-helloworld-py-v2"})
	got, code := sayHello(t.Context(), srv, cc, "Jack")
	if code != codes.OK {
		t.Fatalf("code %v", code)
	}
	if want := "Hello, Jack! I'm from grpc-helloworld-py-v2!"; got != want {
		t.Errorf("reply %q, want %q", got, want)
	}
	if md := srv.Metadata("/" + FullMethod); len(md.Get("user-agent")) != 1 {
		t.Errorf("metadata of the last call not recorded: %v", md)
	}
	if md := srv.Metadata("/nope"); md != nil {
		t.Errorf("metadata of a method never called: %v", md)
	}
}

func TestErrorRateIsSpreadEvenly(t *testing.T) {
	tests := []struct {
		rate float64
		code codes.Code
		want []codes.Code
	}{
		{0, codes.Internal, []codes.Code{0, 0, 0, 0}},
		{0.5, codes.Internal, []codes.Code{0, codes.Internal, 0, codes.Internal}},
		{0.25, 0, []codes.Code{0, 0, 0, codes.Unavailable}},
		{1, codes.ResourceExhausted, []codes.Code{8, 8, 8, 8}},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			srv, cc := start(t, Options{Instance: "v2", ErrorRate: tt.rate, ErrorCode: tt.code})
			var got []codes.Code
			for range tt.want {
				_, code := sayHello(t.Context(), srv, cc, "x")
				got = append(got, code)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("codes (-want +got):\n%s", d)
			}
			recv, failed := srv.Calls()
			if recv != uint64(len(tt.want)) || int(failed) != countNotOK(tt.want) {
				t.Errorf("Calls() = %d, %d", recv, failed)
			}
		})
	}
}

func countNotOK(cs []codes.Code) int {
	n := 0
	for _, c := range cs {
		if c != codes.OK {
			n++
		}
	}
	return n
}

func TestSettersChangeARunningServer(t *testing.T) {
	srv, cc := start(t, Options{Instance: "v2"})
	if _, code := sayHello(t.Context(), srv, cc, "a"); code != codes.OK {
		t.Fatalf("healthy: %v", code)
	}
	srv.SetErrors(1, codes.Aborted)
	if _, code := sayHello(t.Context(), srv, cc, "a"); code != codes.Aborted {
		t.Fatalf("after SetErrors: %v", code)
	}
	srv.SetErrors(0, 0)
	srv.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, code := sayHello(ctx, srv, cc, "a"); code != codes.DeadlineExceeded {
		t.Fatalf("after SetLatency: %v", code)
	}
}

func TestReflection(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    Options
		on   bool // whether v1 answers
	}{
		{"on", Options{Reflection: true}, true},
		{"off", Options{}, false},
		{"v1alpha only", Options{Reflection: true, OnlyV1Alpha: true}, false},
	} {
		on := tt.on
		t.Run(tt.name, func(t *testing.T) {
			_, cc := start(t, tt.o)
			stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			err = stream.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: ServiceName},
			})
			if err != nil && !errors.Is(err, io.EOF) { // EOF: the server ended the stream; Recv says why
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if !on {
				if status.Code(err) != codes.Unimplemented {
					t.Fatalf("reflection off: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()); n != 1 {
				t.Fatalf("%d files for %s, want 1: %v", n, ServiceName, resp)
			}
		})
	}
}

func TestNewServerRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{ErrorRate: -0.1}, {ErrorRate: 1.5}, {Latency: -time.Second}} {
		if _, err := NewServer(o); err == nil {
			t.Errorf("NewServer(%+v) accepted", o)
		}
	}
}

func TestProtosetRoundTrips(t *testing.T) {
	b, err := Protoset()
	if err != nil || len(b) == 0 {
		t.Fatalf("Protoset: %d bytes, %v", len(b), err)
	}
}
