package main

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/rest"

	"github.com/canarydio/canaryd/controller"
	"github.com/canarydio/canaryd/gatewayapi"
	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/pace/limits"
	"github.com/canarydio/canaryd/rollout"
)

var (
	_ controller.Router      = (*gatewayapi.Router)(nil)
	_ controller.Preflighter = (*gatewayapi.Router)(nil)
	_ controller.Preflighter = (*istio.Router)(nil)
	_ controller.Router      = routers{}
	_ controller.Preflighter = routers{}
)

// routers is apply mode's Router: each rollout's weights go to the router of its target's
// kind, the Istio router for a VirtualService, the Gateway API router for a GRPCRoute or
// an HTTPRoute.
type routers struct {
	istio   *istio.Router
	gateway *gatewayapi.Router
}

// newRouters builds both routers for the API server cfg names, limited together to qps
// requests a second in bursts of burst (limits.Configure: zero is its defaults, a
// negative qps no limit), half the burst kept for rollbacks and aborts. It makes no
// request.
func newRouters(cfg *rest.Config, qps float32, burst int, log *slog.Logger) (routers, error) {
	cfg = limits.Configure(cfg, qps, burst) // one limiter, shared by both
	is, err := istio.NewRouter(cfg, istio.Options{Logger: log})
	if err != nil {
		return routers{}, err
	}
	gw, err := gatewayapi.NewRouter(cfg, gatewayapi.Options{Logger: log})
	if err != nil {
		return routers{}, err
	}
	return routers{istio: is, gateway: gw}, nil
}

// kubeRouter is what both routers do.
type kubeRouter interface {
	controller.Router
	controller.Preflighter
}

func (r routers) of(doc *rollout.Document) kubeRouter {
	if doc.Spec.Target().Gateway() {
		return r.gateway
	}
	return r.istio
}

// SetWeights sets the weights of the rollout's route with the router of its kind.
func (r routers) SetWeights(ctx context.Context, doc *rollout.Document, w rollout.Weights) error {
	return r.of(doc).SetWeights(ctx, doc, w)
}

// Preflight runs the preflight checks of the rollout's kind.
func (r routers) Preflight(ctx context.Context, doc *rollout.Document) error {
	return r.of(doc).Preflight(ctx, doc)
}

// WaitFor waits, in gitops mode, until the cluster carries w for the rollout: a
// VirtualService through the Istio router. A Gateway API route is not watched (yet), so
// for one it returns at once and the bake starts when the commit lands.
func (r routers) WaitFor(ctx context.Context, doc *rollout.Document, w rollout.Weights, deadline time.Duration) (time.Duration, error) {
	if doc.Spec.Target().Gateway() {
		return 0, nil
	}
	return r.istio.WaitFor(ctx, doc, w, deadline)
}
