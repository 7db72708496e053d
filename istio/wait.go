package istio

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/canarydio/canaryd/rollout"
)

// WaitFor waits, in gitops mode, until the cluster's VirtualService shows
// weights w on the rollout's route (Argo CD or Flux applied what Git holds),
// and returns how long it took. It reads the object once, then watches it,
// re-reading whenever the watch ends. When deadline passes first it returns
// the time waited and an error wrapping ErrNotConverged that says what the
// cluster held last; a missing VirtualService or route counts as not yet
// converged. It changes nothing.
func (r *Router) WaitFor(ctx context.Context, doc *rollout.Document, w rollout.Weights, deadline time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	var last error
	for {
		done, rv, err := r.check(ctx, doc, w)
		if done {
			return time.Since(start), nil
		}
		last = err
		if rv != "" {
			done, err = r.watchUntil(ctx, doc, w, rv)
			if done {
				return time.Since(start), nil
			}
			if err != nil {
				last = err
			}
		}
		if ctx.Err() != nil {
			return time.Since(start), notConverged(ctx, doc, w, deadline, last)
		}
		// A watch that ended on its own (the server closes them after a
		// while) or a failed read: read again after a short pause.
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// notConverged builds WaitFor's error after the deadline.
func notConverged(ctx context.Context, doc *rollout.Document, w rollout.Weights, deadline time.Duration, last error) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("wait for virtualservice %s: %w", doc.Spec.VirtualService, ctx.Err())
	}
	return fmt.Errorf("virtualservice %s: %w to %s within %s: %w",
		doc.Spec.VirtualService, ErrNotConverged, w, deadline, last)
}

// mismatchError says what the cluster held instead of the wanted weights.
type mismatchError struct{ got, want rollout.Weights }

func (e mismatchError) Error() string {
	return fmt.Sprintf("cluster holds %s, want %s", e.got, e.want)
}

// check reads the VirtualService once: done when it holds w, else the
// resourceVersion to watch from (empty when it could not be read).
func (r *Router) check(ctx context.Context, doc *rollout.Document, w rollout.Weights) (bool, string, error) {
	ref := doc.Spec.VirtualService
	vs, err := r.dyn.Resource(VirtualServices).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return false, "", fmt.Errorf("get: %w", err)
	}
	ok, err := holds(vs, doc, w)
	return ok, vs.GetResourceVersion(), err
}

// holds reports whether the object's route holds w; the error says why not.
func holds(vs *unstructured.Unstructured, doc *rollout.Document, w rollout.Weights) (bool, error) {
	rt, err := findRoute(specOf(vs), doc.Spec.VirtualService.Namespace, doc.Spec.Target())
	if err != nil {
		return false, err
	}
	got, err := weightsAt(specOf(vs), rt)
	if err != nil {
		return false, err
	}
	if got != w {
		return false, mismatchError{got, w}
	}
	return true, nil
}

// watchUntil watches the VirtualService from resourceVersion rv until it
// holds w (true), the watch ends, or ctx is done.
func (r *Router) watchUntil(ctx context.Context, doc *rollout.Document, w rollout.Weights, rv string) (bool, error) {
	ref := doc.Spec.VirtualService
	wi, err := r.dyn.Resource(VirtualServices).Namespace(ref.Namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", ref.Name).String(),
		ResourceVersion: rv,
	})
	if err != nil {
		return false, fmt.Errorf("watch: %w", err)
	}
	defer wi.Stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			return false, last
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return false, last
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				vs, isVS := ev.Object.(*unstructured.Unstructured)
				if !isVS {
					continue
				}
				done, err := holds(vs, doc, w)
				if done {
					return true, nil
				}
				last = err
			case watch.Deleted:
				last = fmt.Errorf("%w (deleted)", ErrNotFound)
			case watch.Error:
				return false, last
			}
		}
	}
}
