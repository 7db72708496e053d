// Package greeter is the sample workload of the sandbox and the tests: gRPC's
// helloworld.Greeter/SayHello service with server reflection, answering
// "Hello, <name>! I'm from <instance>!" as the sample system's pods do. Its error rate and
// added latency can be changed while it runs, so a healthy v2 can be turned into a failing
// one. The helloworld descriptor is built at run time; there is no generated code.
package greeter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/dynamicpb"
)

// BackendHeader is the response header that names the instance that answered.
const BackendHeader = "x-backend"

// Options configures a Server.
type Options struct {
	// Instance is the name the replies carry, like a pod name ("grpc-helloworld-py-v2-5c9f").
	Instance string
	// ErrorRate is the share of calls (0..1) that fail with ErrorCode instead of answering.
	ErrorRate float64
	// ErrorCode is the status of a failed call; codes.OK (the zero value) means Unavailable.
	ErrorCode codes.Code
	// Latency is added to every call before it answers or fails.
	Latency time.Duration
	// Reflection serves gRPC server reflection (v1 and v1alpha).
	Reflection bool
	// OnlyV1Alpha, with Reflection, serves only the v1alpha reflection service, as servers
	// built before reflection v1 do.
	OnlyV1Alpha bool
	// TLS, when set, serves TLS with this configuration (set ClientAuth for mutual TLS);
	// nil serves plaintext.
	TLS *tls.Config
}

// Server is a running or runnable greeter. Its methods are safe for concurrent use.
type Server struct {
	instance string
	schema   *schema
	grpc     *grpc.Server

	mu        sync.Mutex
	errorRate float64
	errorCode codes.Code
	latency   time.Duration

	calls  atomic.Uint64 // calls received
	failed atomic.Uint64 // calls failed on purpose

	mdMu sync.Mutex
	md   map[string]metadata.MD // the request metadata of the last call of each method
}

// NewServer returns a greeter that is not yet serving. It fails only when the options are
// out of range.
func NewServer(o Options) (*Server, error) {
	if o.ErrorRate < 0 || o.ErrorRate > 1 || math.IsNaN(o.ErrorRate) {
		return nil, fmt.Errorf("error rate %v is outside 0..1", o.ErrorRate)
	}
	if o.Latency < 0 {
		return nil, fmt.Errorf("latency %v is negative", o.Latency)
	}
	sc, err := newSchema()
	if err != nil {
		return nil, err
	}
	var opts []grpc.ServerOption
	if o.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(o.TLS)))
	}
	s := &Server{instance: o.Instance, schema: sc, md: map[string]metadata.MD{}}
	opts = append(opts, grpc.ChainUnaryInterceptor(s.recordUnary), grpc.ChainStreamInterceptor(s.recordStream))
	s.grpc = grpc.NewServer(opts...)
	s.SetErrors(o.ErrorRate, o.ErrorCode)
	s.SetLatency(o.Latency)
	s.grpc.RegisterService(s.serviceDesc(), s)
	if o.Reflection {
		registerReflection(s.grpc, sc.files, !o.OnlyV1Alpha)
	}
	return s, nil
}

// Serve answers calls on lis until Stop; it returns nil after Stop.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop closes the listeners and every connection at once, failing calls in flight.
func (s *Server) Stop() { s.grpc.Stop() }

// GracefulStop stops accepting calls and waits for the calls in flight.
func (s *Server) GracefulStop() { s.grpc.GracefulStop() }

// SetErrors makes the share rate (clamped to 0..1) of the following calls fail with code
// (codes.OK means Unavailable). Failures are spread evenly: with rate 0.5 every second
// call fails, with 0.05 one call in twenty.
func (s *Server) SetErrors(rate float64, code codes.Code) {
	if math.IsNaN(rate) {
		rate = 0
	}
	if code == codes.OK {
		code = codes.Unavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errorRate, s.errorCode = min(max(rate, 0), 1), code
}

// SetLatency sets the delay added to every following call; negative means none.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = max(d, 0)
}

// Calls returns how many calls the server has received, and how many of them it failed on
// purpose.
func (s *Server) Calls() (received, failed uint64) { return s.calls.Load(), s.failed.Load() }

// Metadata returns the request metadata of the last call of the full method (such as
// "/helloworld.Greeter/SayHello" or "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
// or nil when there was none.
func (s *Server) Metadata(fullMethod string) metadata.MD {
	s.mdMu.Lock()
	defer s.mdMu.Unlock()
	md, ok := s.md[fullMethod]
	if !ok {
		return nil
	}
	return md.Copy()
}

func (s *Server) record(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mdMu.Lock()
	defer s.mdMu.Unlock()
	s.md[method] = md.Copy()
}

func (s *Server) recordUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	s.record(ctx, info.FullMethod)
	return h(ctx, req)
}

func (s *Server) recordStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	s.record(ss.Context(), info.FullMethod)
	return h(srv, ss)
}

// Instance returns the name the replies carry.
func (s *Server) Instance() string { return s.instance }

// Greeting returns the reply text for name.
func (s *Server) Greeting(name string) string {
	return fmt.Sprintf("Hello, %s! I'm from %s!", name, s.instance)
}

func (s *Server) settings() (float64, codes.Code, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errorRate, s.errorCode, s.latency
}

// fails reports whether call number n (from 0) is one of the rate share that fail:
// exactly when floor((n+1)*rate) passes an integer.
func fails(n uint64, rate float64) bool {
	return math.Floor(float64(n+1)*rate) > math.Floor(float64(n)*rate)
}

func (s *Server) sayHello(ctx context.Context, req *dynamicpb.Message) (*dynamicpb.Message, error) {
	n := s.calls.Add(1) - 1
	rate, code, latency := s.settings()
	_ = grpc.SetHeader(ctx, metadata.Pairs(BackendHeader, s.instance))
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
	if fails(n, rate) {
		s.failed.Add(1)
		return nil, status.Errorf(code, "%s: injected failure", s.instance)
	}
	name := req.Get(s.schema.name).String()
	reply := dynamicpb.NewMessage(s.schema.reply)
	reply.Set(s.schema.message, protoreflectString(s.Greeting(name)))
	return reply, nil
}
