package gateway

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
// counts it in Istio's metrics under the backend's subset.
func (g *Gateway) handle(_ any, ss grpc.ServerStream) error {
	start := time.Now()
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "gateway: no method in stream")
	}
	b, w := g.pick()
	err := g.forward(ss, method, b, w)
	g.metrics.Observe(istiometrics.Request{
		Service: g.serviceOf(b), Namespace: g.opts.Namespace, Version: b.Subset,
		GRPCCode: status.Code(err), Duration: time.Since(start),
	})
	return err
}

func (g *Gateway) forward(ss grpc.ServerStream, method string, b *backend, w weightsAt) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	in, _ := metadata.FromIncomingContext(ctx)
	ctx = metadata.NewOutgoingContext(ctx, forwardable(in))
	cs, err := b.conn.NewStream(ctx, streamDesc, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	up := make(chan error, 1)
	go func() { up <- pumpUp(ss, cs) }()
	hdr, err := cs.Header()
	if err == nil {
		hdr = hdr.Copy()
		hdr.Set(SubsetHeader, b.Subset)
		hdr.Set(WeightsHeader, w.weights.String())
		if err := ss.SendHeader(hdr); err != nil {
			return err
		}
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
