package gateway

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/canarydio/canaryd/sandbox/istiometrics"
)

// Response headers the gateway adds to every forwarded call.
const (
	// SubsetHeader names the subset ("v1", "v2") the call was sent to.
	SubsetHeader = "x-gateway-subset"
	// WeightsHeader holds the weights ("60/40") the call was routed by.
	WeightsHeader = "x-gateway-weights"
)

// streamDesc lets one handler forward unary and streaming calls alike.
var streamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// handle forwards one call of any method to a backend picked by the current weights, and
// counts it in Istio's metrics under the backend's subset as Envoy would: the gateway's own
// proxy reports every call (reporter="source"), with Envoy's response flags when it could
// not deliver it; the backend's proxy reports only the calls that reached it
// (reporter="destination").
func (g *Gateway) handle(_ any, ss grpc.ServerStream) error {
	start := time.Now()
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "gateway: no method in stream")
	}
	b, w := g.pick()
	delivered, err := g.forward(ss, method, b, w)
	r := istiometrics.Request{
		Reporter: "source", Service: g.serviceOf(b), Namespace: g.opts.Namespace, Version: b.Subset,
		GRPCCode: status.Code(err), Duration: time.Since(start),
	}
	if !delivered {
		r.ResponseFlags = b.failureFlag()
		if r.GRPCCode == codes.Unavailable {
			r.HTTPCode = 503 // Envoy answers an undeliverable call itself
		}
	}
	g.metrics.Observe(r)
	if delivered {
		r.Reporter = "destination"
		g.metrics.Observe(r)
	}
	return err
}

// failureFlag is Envoy's response flag for a call the backend did not get: UH (no healthy
// upstream) while the connection is failing, else UF (upstream connection failure).
func (b *backend) failureFlag() string {
	if b.conn.GetState() == connectivity.TransientFailure {
		return "UH"
	}
	return "UF"
}

// forward proxies one call to b; delivered reports whether the backend got it (it sent
// its headers or its status).
func (g *Gateway) forward(ss grpc.ServerStream, method string, b *backend, w weightsAt) (delivered bool, err error) {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	in, _ := metadata.FromIncomingContext(ctx)
	ctx = metadata.NewOutgoingContext(ctx, forwardable(in))
	cs, err := b.conn.NewStream(ctx, streamDesc, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return false, err
	}
	up := make(chan error, 1)
	go func() { up <- pumpUp(ss, cs) }()
	hdr, err := cs.Header()
	if err != nil {
		return false, err
	}
	return true, relay(ss, cs, b, w, hdr, up)
}

// relay sends the backend's headers, messages and trailer back to the caller.
func relay(ss grpc.ServerStream, cs grpc.ClientStream, b *backend, w weightsAt, hdr metadata.MD, up chan error) error {
	hdr = hdr.Copy()
	hdr.Set(SubsetHeader, b.Subset)
	hdr.Set(WeightsHeader, w.weights.String())
	if err := ss.SendHeader(hdr); err != nil {
		return err
	}
	for {
		var f frame
		if err := cs.RecvMsg(&f); err != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(&f); err != nil {
			return err
		}
		select {
		case err := <-up:
			if err != nil {
				return err
			}
			up = nil // done sending; a nil channel never fires again
		default:
		}
	}
}

// pumpUp copies the caller's messages to the backend until the caller half-closes.
func pumpUp(ss grpc.ServerStream, cs grpc.ClientStream) error {
	for {
		var f frame
		if err := ss.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return cs.CloseSend()
			}
			return err
		}
		if err := cs.SendMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the backend ended the call; RecvMsg reports why
			}
			return err
		}
	}
}

// forwardable returns the caller's metadata without the transport's own headers, which
// the client side of the gateway sets anew.
func forwardable(in metadata.MD) metadata.MD {
	out := metadata.MD{}
	for k, v := range in {
		switch {
		case strings.HasPrefix(k, ":"), strings.HasPrefix(k, "grpc-"),
			k == "content-type", k == "user-agent", k == "te", k == "host":
			continue
		}
		out[k] = v
	}
	return out
}
