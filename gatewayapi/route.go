package gatewayapi

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/canarydio/canaryd/rollout"
)

// route is one GRPCRoute or HTTPRoute as read: its rules' backendRefs, pointing into the
// typed object, and how to write the object back.
type route struct {
	names  []string
	rules  [][]*gwv1.BackendRef
	update func(ctx context.Context) error
}

// get reads the target's route and picks its rule by the domain's rule.
func (r *Router) get(ctx context.Context, t rollout.Target) (*route, rollout.Pick, error) {
	var (
		rt  *route
		err error
	)
	switch t.Kind {
	case rollout.KindGRPCRoute:
		rt, err = r.getGRPC(ctx, t)
	case rollout.KindHTTPRoute:
		rt, err = r.getHTTP(ctx, t)
	default:
		return nil, rollout.Pick{}, fmt.Errorf("%s: %w: kind %q is not a Gateway API route", t, ErrNotFound, t.Kind)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, rollout.Pick{}, fmt.Errorf("%s: %w", t, ErrNotFound)
	case err != nil:
		return nil, rollout.Pick{}, fmt.Errorf("get %s: %w", t, err)
	}
	p, err := t.Pick(t.Namespace, rt.views())
	if err != nil {
		return nil, rollout.Pick{}, errPick(err)
	}
	return rt, p, nil
}

func (r *Router) getGRPC(ctx context.Context, t rollout.Target) (*route, error) {
	c := r.gw.GatewayV1().GRPCRoutes(t.Namespace)
	obj, err := c.Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	rt := &route{update: func(ctx context.Context) error {
		_, err := c.Update(ctx, obj, metav1.UpdateOptions{FieldManager: r.mgr})
		return err
	}}
	for i := range obj.Spec.Rules {
		rule := &obj.Spec.Rules[i]
		refs := make([]*gwv1.BackendRef, len(rule.BackendRefs))
		for j := range rule.BackendRefs {
			refs[j] = &rule.BackendRefs[j].BackendRef
		}
		rt.add(rule.Name, refs)
	}
	return rt, nil
}

func (r *Router) getHTTP(ctx context.Context, t rollout.Target) (*route, error) {
	c := r.gw.GatewayV1().HTTPRoutes(t.Namespace)
	obj, err := c.Get(ctx, t.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	rt := &route{update: func(ctx context.Context) error {
		_, err := c.Update(ctx, obj, metav1.UpdateOptions{FieldManager: r.mgr})
		return err
	}}
	for i := range obj.Spec.Rules {
		rule := &obj.Spec.Rules[i]
		refs := make([]*gwv1.BackendRef, len(rule.BackendRefs))
		for j := range rule.BackendRefs {
			refs[j] = &rule.BackendRefs[j].BackendRef
		}
		rt.add(rule.Name, refs)
	}
	return rt, nil
}

func (rt *route) add(name *gwv1.SectionName, refs []*gwv1.BackendRef) {
	n := ""
	if name != nil {
		n = string(*name)
	}
	rt.names = append(rt.names, n)
	rt.rules = append(rt.rules, refs)
}

// views is the route as the domain's rule sees it.
func (rt *route) views() []rollout.RouteView {
	views := make([]rollout.RouteView, len(rt.rules))
	for i, refs := range rt.rules {
		views[i].Name = rt.names[i]
		for _, ref := range refs {
			b := rollout.Backend{Host: string(ref.Name), Weight: weightOf(ref),
				Service: (ref.Kind == nil || *ref.Kind == "Service") && (ref.Group == nil || *ref.Group == "")}
			if ref.Namespace != nil {
				b.Namespace = string(*ref.Namespace)
			}
			if ref.Port != nil {
				b.Port = int(*ref.Port)
			}
			views[i].Backends = append(views[i].Backends, b)
		}
	}
	return views
}

// weightOf is a backendRef's weight; the API's default is 1.
func weightOf(ref *gwv1.BackendRef) int {
	if ref.Weight == nil {
		return 1
	}
	return int(*ref.Weight)
}

func (rt *route) weights(p rollout.Pick) rollout.Weights {
	refs := rt.rules[p.Route]
	return rollout.Weights{Stable: weightOf(refs[p.Stable]), Canary: weightOf(refs[p.Canary])}
}

func (rt *route) set(p rollout.Pick, w rollout.Weights) {
	refs := rt.rules[p.Route]
	s, c := int32(w.Stable), int32(w.Canary)
	refs[p.Stable].Weight, refs[p.Canary].Weight = &s, &c
}
