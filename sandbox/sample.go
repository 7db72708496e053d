package sandbox

import (
	"context"
	"fmt"
	"strings"

	"github.com/canarydio/canaryd/gitops"
	"github.com/canarydio/canaryd/rollout"
)

// The routes the demo's rollout can step.
const (
	RouteVirtualService = "virtualservice" // deploy/sample's VirtualService grpc-vs
	RouteGRPCRoute      = "grpcroute"      // deploy/sample-gateway-api's GRPCRoute grpc-route
)

// Routes lists the routes the demo can step, the default first.
var Routes = []string{RouteVirtualService, RouteGRPCRoute}

// Sample is what the demo's rollout steps: the seed's VirtualService, or the same story on
// a Gateway API GRPCRoute whose two backends are the Services grpc-helloworld-py-v1 and -v2.
type Sample struct {
	Route    string // RouteVirtualService or RouteGRPCRoute
	Manifest string // the file of the demo's repo that holds it
	Ref      gitops.VSRef
	// Services are the Services the gateway counts v1's and v2's calls under; empty means
	// the VirtualService's one Service, grpc-helloworld-py.
	Services [2]string
	// dir is the seed's folder of manifests; every other folder of the seed but
	// deploy/sample's app.yaml (the Deployments) is left out.
	dir string
	// target is the spec's lines that name it.
	target string
}

// SampleVirtualService and SampleGRPCRoute are the two samples.
var (
	SampleVirtualService = Sample{Route: RouteVirtualService, Manifest: Manifest, Ref: Ref, dir: "deploy/sample",
		target: "  virtualService: {namespace: default, name: grpc-vs}\n  host: grpc-helloworld-py\n  stable: v1\n  canary: v2\n"}
	SampleGRPCRoute = Sample{Route: RouteGRPCRoute, Manifest: "deploy/sample-gateway-api/route.yaml",
		Ref: gitops.VSRef{Kind: rollout.KindGRPCRoute, Namespace: "default", Name: "grpc-route", Route: "greeter",
			Stable: "grpc-helloworld-py-v1", Canary: "grpc-helloworld-py-v2", Port: 50051},
		Services: [2]string{"grpc-helloworld-py-v1", "grpc-helloworld-py-v2"}, dir: "deploy/sample-gateway-api",
		target: "  route: {kind: GRPCRoute, namespace: default, name: grpc-route, rule: greeter, port: 50051}\n" +
			"  stable: grpc-helloworld-py-v1\n  canary: grpc-helloworld-py-v2\n"}
)

// SampleFor returns the sample of a route name ("" is the VirtualService).
func SampleFor(route string) (Sample, error) {
	switch route {
	case "", RouteVirtualService:
		return SampleVirtualService, nil
	case RouteGRPCRoute:
		return SampleGRPCRoute, nil
	}
	return Sample{}, fmt.Errorf("unknown route %q (known: %s)", route, strings.Join(Routes, ", "))
}

// seeds reports whether the seed file at p (relative to the seed's root) belongs to s.
func (s Sample) seeds(p string) bool {
	return strings.HasPrefix(p, s.dir+"/") || p == "deploy/sample/app.yaml"
}

// WeightsAt returns the sample's weights in its manifest at rev of remote.
func (s Sample) WeightsAt(ctx context.Context, remote, rev string) (rollout.Weights, error) {
	out, err := gitOutput(ctx, remote, seedAuthor, "show", rev+":"+s.Manifest)
	if err != nil {
		return rollout.Weights{}, err
	}
	w, err := gitops.ReadWeights([]byte(out), s.Ref)
	if err != nil {
		return rollout.Weights{}, fmt.Errorf("%s at %s: %w", s.Manifest, rev, err)
	}
	return w, nil
}
