package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/canarydio/canaryd/pace/limits"
	"github.com/canarydio/canaryd/rollout"
)

// Options configures a Router.
type Options struct {
	// QPS and Burst limit the Router's requests as limits.Configure does (zero: its
	// defaults; a weight change here is three requests: get, update, read back). They are
	// used only when the rest.Config sets no limit of its own.
	QPS   float32
	Burst int
	// Logger receives one line per weight change; nil discards.
	Logger *slog.Logger
	// FieldManager names canaryd in the objects' managedFields; empty is "canaryd".
	FieldManager string
}

// Router reads and sets the weights of a rollout's GRPCRoute or HTTPRoute. It is safe for
// concurrent use.
type Router struct {
	gw   gwclient.Interface
	kube kubernetes.Interface
	log  *slog.Logger
	mgr  string
}

// NewRouter returns a Router that talks to the API server cfg names. It makes no request.
func NewRouter(cfg *rest.Config, opts Options) (*Router, error) {
	cfg = rest.AddUserAgent(limits.Configure(cfg, opts.QPS, opts.Burst), "canaryd")
	r := &Router{log: opts.Logger, mgr: opts.FieldManager}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.mgr == "" {
		r.mgr = "canaryd"
	}
	var err error
	if r.gw, err = gwclient.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("gateway api client: %w", err)
	}
	if r.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return r, nil
}

// Weights returns the weights the cluster holds for the rollout's rule, as found (a
// backendRef without a weight has the API's default, 1), even when they do not sum to 100.
func (r *Router) Weights(ctx context.Context, doc *rollout.Document) (rollout.Weights, error) {
	rt, p, err := r.get(ctx, doc.Spec.Target())
	if err != nil {
		return rollout.Weights{}, err
	}
	return rt.weights(p), nil
}

// SetWeights sets the stable and canary weights of the rollout's rule to w and reads the
// object back to confirm them. Only those two weights change: every other rule, field and
// object stays as it was. It is idempotent (no update is sent when the cluster already
// holds w) and retries when another writer changes the object between its read and its
// update. It changes nothing and returns an error wrapping ErrNotFound, ErrRuleNotFound,
// ErrAmbiguousRule, ErrBadWeights or ErrRejected when it cannot; ErrNotConfirmed when the
// read-back differs.
func (r *Router) SetWeights(ctx context.Context, doc *rollout.Document, w rollout.Weights) error {
	t := doc.Spec.Target()
	if !w.Valid() {
		return fmt.Errorf("%s: %w: %s", t, ErrBadWeights, w)
	}
	start := time.Now()
	var from rollout.Weights
	updated := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rt, p, err := r.get(ctx, t)
		if err != nil {
			return err
		}
		if p.Others != 0 {
			return fmt.Errorf("%s: %w: the rule sends weight %d to other backends, so %s would sum to %d",
				t, ErrBadWeights, p.Others, w, w.Stable+w.Canary+p.Others)
		}
		if from = rt.weights(p); from == w {
			return nil
		}
		rt.set(p, w)
		err = rt.update(ctx)
		if err != nil && !apierrors.IsConflict(err) {
			return rejected(t, err)
		}
		updated = err == nil
		return err
	})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("update %s: still conflicting after retries: %w", t, err)
	}
	if err != nil {
		return err
	}
	if got, err := r.Weights(ctx, doc); err != nil {
		return fmt.Errorf("read back: %w", err)
	} else if got != w {
		return fmt.Errorf("%s: %w: set %s, read back %s", t, ErrNotConfirmed, w, got)
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "weights set",
		slog.String("rollout", doc.Name()), slog.String("route", t.String()),
		slog.String("from", from.String()), slog.String("weight", w.String()),
		slog.Bool("updated", updated), slog.Duration("took", time.Since(start)))
	return nil
}

// Preflight checks, before the first traffic step, that the route and its rule exist and
// that both backend Services exist (with the ports the backendRefs name). It changes
// nothing. Its errors wrap ErrNotFound, ErrRuleNotFound, ErrAmbiguousRule or
// ErrServiceMissing.
func (r *Router) Preflight(ctx context.Context, doc *rollout.Document) error {
	t := doc.Spec.Target()
	rt, p, err := r.get(ctx, t)
	if err != nil {
		return err
	}
	for _, ref := range []*gwv1.BackendRef{rt.rules[p.Route][p.Stable], rt.rules[p.Route][p.Canary]} {
		if err := r.serviceExists(ctx, t, ref); err != nil {
			return err
		}
	}
	return nil
}

// serviceExists checks that the Service a backendRef names exists and has its port.
func (r *Router) serviceExists(ctx context.Context, t rollout.Target, ref *gwv1.BackendRef) error {
	ns := t.Namespace
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	svc, err := r.kube.CoreV1().Services(ns).Get(ctx, string(ref.Name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: %w: service %s/%s does not exist", t, ErrServiceMissing, ns, ref.Name)
	case err != nil:
		return fmt.Errorf("%s: get service %s/%s: %w", t, ns, ref.Name, err)
	case ref.Port == nil:
		return nil
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == int32(*ref.Port) {
			return nil
		}
	}
	return fmt.Errorf("%s: %w: service %s/%s has no port %d", t, ErrServiceMissing, ns, ref.Name, *ref.Port)
}

// rejected wraps an API server's refusal of an update with ErrRejected and its message.
func rejected(t rollout.Target, err error) error {
	if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
		return fmt.Errorf("update %s: %w: %s", t, ErrRejected, err.Error())
	}
	return fmt.Errorf("update %s: %w", t, err)
}

// errPick wraps the domain rule's refusal with the Router's sentinel for it.
func errPick(err error) error {
	if errors.Is(err, rollout.ErrRouteAmbiguous) {
		return fmt.Errorf("%w: %w", ErrAmbiguousRule, err)
	}
	return fmt.Errorf("%w: %w", ErrRuleNotFound, err)
}
