package analysis

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fullstorydev/grpcurl"
	"github.com/jhump/protoreflect/desc" //nolint:staticcheck // grpcurl's API is built on it
	"github.com/jhump/protoreflect/grpcreflect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/canarydio/canaryd/rollout"
)

// defaultConnectTimeout bounds fetching descriptors by reflection, as grpcurl's
// -connect-timeout does its dial.
const defaultConnectTimeout = 10 * time.Second

// userAgent is what the probe's calls say they are.
const userAgent = "canaryd-probe"

// probeConn is one cached connection and the descriptors learned through it.
type probeConn struct {
	mu       sync.Mutex
	cc       *grpc.ClientConn
	files    grpcurl.DescriptorSource            // from -protoset or -proto; nil with reflection
	services map[string]grpcurl.DescriptorSource // reflection snapshots, by service name
	lastUsed atomic.Int64                        // unix nanoseconds; read without mu, so a slow dial blocks no one
	dial     dialFunc                            // nil: gRPC's own dialer
}

// conn returns the cached connection entry for cmd's target, closing entries left unused
// for longer than probeIdle.
func (p *Probe) conn(cmd *rollout.GRPCurlCommand) (*probeConn, error) {
	key := connKey(cmd)
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	for k, pc := range p.conns {
		if k != key && pc.idleSince(now) > probeIdle {
			pc.close()
			delete(p.conns, k)
		}
	}
	pc := p.conns[key]
	if pc == nil {
		pc = &probeConn{dial: p.dial}
		p.conns[key] = pc
	}
	pc.lastUsed.Store(now.UnixNano())
	return pc, nil
}

// connKey identifies what a connection and its descriptors depend on: everything but the
// request, the method, the call-only headers and the deadline.
func connKey(c *rollout.GRPCurlCommand) string {
	return strings.Join([]string{
		c.Address, fmt.Sprint(c.Plaintext, c.Insecure), c.Authority, c.ServerName,
		c.CACert, c.Cert, c.Key, c.UserAgent, c.ConnectTime.String(),
		strings.Join(c.Headers, "\x01"), strings.Join(c.Protosets, "\x01"),
		strings.Join(c.ImportPaths, "\x01"), strings.Join(c.Protos, "\x01"),
	}, "\x00")
}

func (pc *probeConn) idleSince(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, pc.lastUsed.Load()))
}

func (pc *probeConn) close() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.cc != nil {
		pc.cc.Close()
		pc.cc = nil
	}
	pc.services = nil
}

// drop closes cc if it is still the cached connection, so that the next call dials again
// and fetches descriptors by reflection again.
func (pc *probeConn) drop(cc *grpc.ClientConn) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.cc == cc && cc != nil {
		cc.Close()
		pc.cc, pc.services = nil, nil
	}
}

// prepare returns a usable connection and the descriptors of cmd's service, and whether
// the connection was cached from an earlier call. It dials again when there is no
// connection or the cached one is not ready or idle (a failed or still failing
// connection reports a stale error to every call); a new connection forgets the
// descriptors learned by reflection, since the server behind it may be a new version.
func (pc *probeConn) prepare(ctx context.Context, cmd *rollout.GRPCurlCommand) (cc *grpc.ClientConn, src grpcurl.DescriptorSource, reused bool, err error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.cc != nil {
		if s := pc.cc.GetState(); s != connectivity.Ready && s != connectivity.Idle {
			pc.cc.Close()
			pc.cc, pc.services = nil, nil
		}
	}
	reused = pc.cc != nil
	if pc.cc == nil {
		if pc.cc, err = dial(cmd, pc.dial); err != nil {
			return nil, nil, false, err
		}
	}
	src, err = pc.source(ctx, cmd)
	return pc.cc, src, reused, err
}

// dial creates a client connection as grpcurl's dial does for the command's TLS flags.
// It does not wait: the first call connects, and a refused connection is that call's
// UNAVAILABLE status.
func dial(cmd *rollout.GRPCurlCommand, through dialFunc) (*grpc.ClientConn, error) {
	ua := userAgent
	if cmd.UserAgent != "" {
		ua = cmd.UserAgent + " " + userAgent
	}
	opts := []grpc.DialOption{grpc.WithUserAgent(ua)}
	if through != nil {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return through(ctx, "tcp", addr)
		}))
	}
	var creds credentials.TransportCredentials
	if cmd.Plaintext {
		creds = insecure.NewCredentials()
		if cmd.Authority != "" {
			opts = append(opts, grpc.WithAuthority(cmd.Authority))
		}
	} else {
		tlsConf, err := grpcurl.ClientTLSConfig(cmd.Insecure, cmd.CACert, cmd.Cert, cmd.Key)
		if err != nil {
			return nil, fmt.Errorf("tls config: %w", err)
		}
		creds = credentials.NewTLS(tlsConf)
		if cmd.ServerName != "" && cmd.Authority != "" && cmd.ServerName != cmd.Authority {
			return nil, fmt.Errorf("-servername %q and -authority %q differ", cmd.ServerName, cmd.Authority)
		}
		if name := firstNonEmpty(cmd.ServerName, cmd.Authority); name != "" {
			opts = append(opts, grpc.WithAuthority(name))
		}
	}
	opts = append(opts, grpc.WithTransportCredentials(creds))
	target := cmd.Address
	if !strings.Contains(target, "://") {
		target = "passthrough:///" + target
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", cmd.Address, err)
	}
	cc.Connect()
	return cc, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// source returns the descriptors for cmd's service: from the protoset or proto files
// (loaded once), or from server reflection (fetched once per connection and service).
func (pc *probeConn) source(ctx context.Context, cmd *rollout.GRPCurlCommand) (grpcurl.DescriptorSource, error) {
	var err error
	switch {
	case len(cmd.Protosets) > 0:
		if pc.files == nil {
			pc.files, err = grpcurl.DescriptorSourceFromProtoSets(cmd.Protosets...)
		}
	case len(cmd.Protos) > 0:
		if pc.files == nil {
			pc.files, err = grpcurl.DescriptorSourceFromProtoFiles(cmd.ImportPaths, cmd.Protos...)
		}
	default:
		return pc.reflect(ctx, cmd)
	}
	if err != nil {
		return nil, fmt.Errorf("load descriptors: %w", err)
	}
	return pc.files, nil
}

// reflect asks the server for the file that defines cmd's service (reflection v1, falling
// back to v1alpha) and keeps it, with its dependencies, as a static descriptor source.
func (pc *probeConn) reflect(ctx context.Context, cmd *rollout.GRPCurlCommand) (grpcurl.DescriptorSource, error) {
	svc, _, _ := strings.Cut(cmd.Method, "/")
	if src, ok := pc.services[svc]; ok {
		return src, nil
	}
	timeout := cmd.ConnectTime
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, grpcurl.MetadataFromHeaders(cmd.Headers))
	rc := grpcreflect.NewClientAuto(ctx, pc.cc)
	rc.AllowMissingFileDescriptors()
	defer rc.Reset()
	d, err := grpcurl.DescriptorSourceFromServer(ctx, rc).FindSymbol(svc)
	if err != nil {
		return nil, fmt.Errorf("descriptors of %s by server reflection: %w", svc, err)
	}
	sd, ok := d.(*desc.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", svc)
	}
	src, err := grpcurl.DescriptorSourceFromFileDescriptors(sd.GetFile())
	if err != nil {
		return nil, fmt.Errorf("descriptors of %s: %w", svc, err)
	}
	if pc.services == nil {
		pc.services = map[string]grpcurl.DescriptorSource{}
	}
	pc.services[svc] = src
	return src, nil
}
