package istio

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/canarydio/canaryd/rollout"
)

// Preflight checks, before the first traffic step, what must hold for the
// weights to mean anything: the VirtualService and its route exist, a
// DestinationRule in the VirtualService's namespace for the host defines
// both the stable and the canary subset, and every Deployment in the host's
// namespace whose pods carry the canary subset's labels is Available (there
// must be at least one). It changes nothing. Its errors wrap ErrNotFound,
// ErrRouteNotFound, ErrAmbiguousRoute, ErrSubsetMissing or ErrNotAvailable.
func (r *Router) Preflight(ctx context.Context, doc *rollout.Document) error {
	if _, _, err := r.get(ctx, doc); err != nil {
		return err
	}
	canary, err := r.subsetLabels(ctx, &doc.Spec)
	if err != nil {
		return err
	}
	return r.available(ctx, &doc.Spec, canary)
}

// subsetLabels finds a DestinationRule for the host (short and FQDN forms
// alike, resolved in the VirtualService's namespace) that defines both
// subsets and returns the canary subset's labels. Of several rules for the
// host, the oldest that defines both is used, as Istio uses the oldest.
func (r *Router) subsetLabels(ctx context.Context, s *rollout.Spec) (map[string]string, error) {
	ns := s.VirtualService.Namespace
	list, err := r.istio.NetworkingV1().DestinationRules(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list destinationrules in %s: %w", ns, err)
	}
	items := list.Items
	sort.SliceStable(items, func(i, j int) bool {
		return items[i].CreationTimestamp.Before(&items[j].CreationTimestamp)
	})
	var problems []string
	for i := range items {
		dr := items[i]
		if !rollout.SameHost(dr.Spec.Host, s.Host, ns) {
			continue
		}
		subsets := map[string]map[string]string{}
		for _, ss := range dr.Spec.Subsets {
			subsets[ss.GetName()] = ss.GetLabels()
		}
		var missing []string
		for _, name := range []string{s.Stable, s.Canary} {
			if _, ok := subsets[name]; !ok {
				missing = append(missing, fmt.Sprintf("%q", name))
			}
		}
		if len(missing) == 0 {
			return subsets[s.Canary], nil
		}
		problems = append(problems, fmt.Sprintf("destinationrule %s/%s does not define subset %s",
			ns, dr.Name, strings.Join(missing, " or ")))
	}
	if len(problems) == 0 {
		return nil, fmt.Errorf("%w: no destinationrule in %s has host %q", ErrSubsetMissing, ns, s.Host)
	}
	return nil, fmt.Errorf("%w: %s", ErrSubsetMissing, strings.Join(problems, "; "))
}

// available checks that the Deployments whose pods the canary subset selects
// exist and are all Available.
func (r *Router) available(ctx context.Context, s *rollout.Spec, subset map[string]string) error {
	ns := hostNamespace(s.Host, s.VirtualService.Namespace)
	if len(subset) == 0 {
		return fmt.Errorf("%w: subset %q of host %q has no labels to select a deployment by",
			ErrNotAvailable, s.Canary, s.Host)
	}
	sel := labels.SelectorFromSet(subset)
	list, err := r.kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list deployments in %s: %w", ns, err)
	}
	var matched, unavailable []string
	for i := range list.Items {
		d := &list.Items[i]
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			continue
		}
		matched = append(matched, d.Name)
		if !deploymentAvailable(d) {
			unavailable = append(unavailable, d.Name)
		}
	}
	switch {
	case len(matched) == 0:
		return fmt.Errorf("%w: no deployment in %s has pods labelled %s (subset %q)",
			ErrNotAvailable, ns, sel, s.Canary)
	case len(unavailable) > 0:
		return fmt.Errorf("%w: deployment %s in %s (subset %q) is not Available",
			ErrNotAvailable, strings.Join(unavailable, ", "), ns, s.Canary)
	}
	return nil
}

// deploymentAvailable reports whether the Deployment's Available condition is
// True for its current generation.
func deploymentAvailable(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// hostNamespace returns the namespace a destination host lives in: the
// second label of a "name.namespace[.svc...]" host, else the given default.
func hostNamespace(host, def string) string {
	parts := strings.Split(host, ".")
	if len(parts) >= 2 && parts[1] != "" {
		return parts[1]
	}
	return def
}
