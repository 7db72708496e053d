package istio

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/canarydio/canaryd/pace/limits"
	"github.com/canarydio/canaryd/rollout"
)

// VirtualServices is the resource the Router edits.
var VirtualServices = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// Options configures a Router.
type Options struct {
	// QPS and Burst limit the Router's requests as limits.Configure does: zero
	// means limits.DefaultQPS and limits.DefaultBurst, a negative QPS no client-side
	// limit. They are used only when the rest.Config sets no limit of its own.
	QPS   float32
	Burst int
	// Logger receives one line per weight change; nil discards.
	Logger *slog.Logger
	// FieldManager names canaryd in the objects' managedFields; empty is "canaryd".
	FieldManager string
}

// Router reads and sets the weights of a rollout's route on a Kubernetes API
// server. It is safe for concurrent use.
type Router struct {
	dyn   dynamic.Interface
	istio istioclient.Interface
	kube  kubernetes.Interface
	log   *slog.Logger
	mgr   string

	mu     sync.Mutex
	stored map[rollout.ObjectRef]*unstructured.Unstructured // as the API server last answered
}

// maxStored bounds the objects the Router remembers (one per VirtualService it set).
const maxStored = 10000

// NewRouter returns a Router that talks to the API server cfg names. It makes
// no request.
func NewRouter(cfg *rest.Config, opts Options) (*Router, error) {
	cfg = rest.AddUserAgent(limits.Configure(cfg, opts.QPS, opts.Burst), "canaryd")
	r := &Router{log: opts.Logger, mgr: opts.FieldManager, stored: map[rollout.ObjectRef]*unstructured.Unstructured{}}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.mgr == "" {
		r.mgr = "canaryd"
	}
	var err error
	if r.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	if r.istio, err = istioclient.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("istio client: %w", err)
	}
	if r.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return r, nil
}

// Weights returns the weights the cluster holds for the rollout's route. They
// are returned as found, even when they do not sum to 100.
func (r *Router) Weights(ctx context.Context, doc *rollout.Document) (rollout.Weights, error) {
	vs, rt, err := r.get(ctx, doc)
	if err != nil {
		return rollout.Weights{}, err
	}
	w, err := weightsAt(specOf(vs), rt)
	if err != nil {
		return rollout.Weights{}, fmt.Errorf("virtualservice %s: %w", doc.Spec.VirtualService, err)
	}
	return w, nil
}

// SetWeights sets the stable and canary weights of the rollout's route to w
// and confirms them in the object the API server stored (the update's answer,
// after admission). A change starts from the object as the API server last
// answered it, so that it costs one request while no one else writes the
// object (an update of an older version is refused as a conflict, and the
// object read again), and two otherwise; a no-op, one read. Only those two weights change:
// every other route, field and object stays as it was. It is idempotent (no
// update is sent when the cluster already holds w) and retries when another
// writer changes the object between its read and its update. It changes
// nothing and returns an error wrapping ErrNotFound, ErrRouteNotFound,
// ErrAmbiguousRoute, ErrBadWeights or ErrRejected (with the API server's
// message) when it cannot; ErrNotConfirmed when the stored object holds other
// weights.
func (r *Router) SetWeights(ctx context.Context, doc *rollout.Document, w rollout.Weights) error {
	ref := doc.Spec.VirtualService
	if !w.Valid() {
		return fmt.Errorf("virtualservice %s: %w: %s", ref, ErrBadWeights, w)
	}
	start := time.Now()
	var from rollout.Weights
	var stored *unstructured.Unstructured
	var at route
	remembered := r.remembered(doc, w)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vs, rt := remembered.vs, remembered.rt
		remembered.vs = nil // a conflict reads the object again
		if vs == nil {
			var err error
			if vs, rt, err = r.get(ctx, doc); err != nil {
				return err
			}
		}
		spec := specOf(vs)
		var err error
		if from, err = weightsAt(spec, rt); err != nil {
			return fmt.Errorf("virtualservice %s: %w", ref, err)
		}
		if err := setWeightsAt(spec, rt, w); err != nil {
			return fmt.Errorf("virtualservice %s: %w", ref, err)
		}
		if from == w {
			return nil
		}
		stored, err = r.dyn.Resource(VirtualServices).Namespace(ref.Namespace).
			Update(ctx, vs, metav1.UpdateOptions{FieldManager: r.mgr})
		if err != nil && !apierrors.IsConflict(err) {
			r.forget(ref)
			return rejected(ref, err)
		}
		at = rt
		return err
	})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("update virtualservice %s: still conflicting after retries: %w", ref, err)
	}
	if err != nil {
		return err
	}
	updated := stored != nil
	if updated {
		if err := confirm(doc, stored, at, w); err != nil {
			r.forget(ref)
			return err
		}
		r.remember(ref, stored)
	}
	r.log.LogAttrs(ctx, slog.LevelInfo, "weights set",
		slog.String("rollout", doc.Name()), slog.String("virtualservice", ref.String()),
		slog.String("from", from.String()), slog.String("weight", w.String()),
		slog.Bool("updated", updated), slog.Duration("took", time.Since(start)))
	return nil
}

// rememberedObject is a copy of the object as the API server last answered, and the
// rollout's route in it; vs is nil when there is none to start from.
type rememberedObject struct {
	vs *unstructured.Unstructured
	rt route
}

// remembered returns a copy of the object as last stored, to change to w. A copy that
// already holds w is not used: whether the cluster still does is the API server's to
// say, and a no-op sends no update that a stale copy would turn into a conflict.
func (r *Router) remembered(doc *rollout.Document, w rollout.Weights) rememberedObject {
	ref := doc.Spec.VirtualService
	r.mu.Lock()
	vs := r.stored[ref]
	r.mu.Unlock()
	if vs == nil {
		return rememberedObject{}
	}
	vs = vs.DeepCopy()
	rt, err := findRoute(specOf(vs), ref.Namespace, doc.Spec.Target())
	if err != nil {
		return rememberedObject{}
	}
	if cur, err := weightsAt(specOf(vs), rt); err != nil || cur == w {
		return rememberedObject{}
	}
	return rememberedObject{vs: vs, rt: rt}
}

// remember keeps the object as the API server answered it.
func (r *Router) remember(ref rollout.ObjectRef, vs *unstructured.Unstructured) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.stored[ref]; !ok && len(r.stored) >= maxStored {
		clear(r.stored) // past the bound, start over: each object costs one read again
	}
	r.stored[ref] = vs
}

func (r *Router) forget(ref rollout.ObjectRef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.stored, ref)
}

// confirm checks that the object the API server stored holds w at the route.
func confirm(doc *rollout.Document, stored *unstructured.Unstructured, rt route, w rollout.Weights) error {
	got, err := weightsAt(specOf(stored), rt)
	if err != nil {
		return fmt.Errorf("virtualservice %s as stored: %w", doc.Spec.VirtualService, err)
	}
	if got != w {
		return fmt.Errorf("virtualservice %s: %w: set %s, stored %s",
			doc.Spec.VirtualService, ErrNotConfirmed, w, got)
	}
	return nil
}

// get fetches the VirtualService and finds the rollout's route in it.
func (r *Router) get(ctx context.Context, doc *rollout.Document) (*unstructured.Unstructured, route, error) {
	ref := doc.Spec.VirtualService
	vs, err := r.dyn.Resource(VirtualServices).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.forget(ref)
		return nil, route{}, fmt.Errorf("virtualservice %s: %w", ref, ErrNotFound)
	case err != nil:
		return nil, route{}, fmt.Errorf("get virtualservice %s: %w", ref, err)
	}
	rt, err := findRoute(specOf(vs), ref.Namespace, doc.Spec.Target())
	if err != nil {
		return nil, route{}, fmt.Errorf("virtualservice %s: %w", ref, err)
	}
	r.remember(ref, vs.DeepCopy())
	return vs, rt, nil
}

// specOf returns the object's spec map (empty when it has none).
func specOf(vs *unstructured.Unstructured) map[string]any {
	spec, _ := vs.Object["spec"].(map[string]any)
	return spec
}

// rejected wraps an API server's refusal of an update with ErrRejected and
// its message.
func rejected(ref rollout.ObjectRef, err error) error {
	if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
		return fmt.Errorf("update virtualservice %s: %w: %s", ref, ErrRejected, err.Error())
	}
	return fmt.Errorf("update virtualservice %s: %w", ref, err)
}
