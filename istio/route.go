package istio

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/canarydio/canaryd/rollout"
)

// route locates the managed http route of a VirtualService and its stable
// and canary destinations, as indexes into spec.http and spec.http[i].route.
type route struct {
	HTTP   int
	Name   string
	Stable int
	Canary int
	// Others is the summed weight of the route's other destinations.
	Others int64
}

// findRoute finds the route the target names in a VirtualService's spec (the object is in
// namespace ns) by the domain's rule (rollout.Target.Pick), which the manifest editor
// applies too: the http route named t.Route, or else the only http route whose
// destinations hold both the stable and the canary subset of t.Host, hosts resolved as
// Istio resolves them. Its errors wrap ErrRouteNotFound or ErrAmbiguousRoute.
func findRoute(vsSpec map[string]any, ns string, t rollout.Target) (route, error) {
	https, _ := vsSpec["http"].([]any)
	views := make([]rollout.RouteView, len(https))
	for i, h := range https {
		hm, _ := h.(map[string]any)
		views[i].Name, _ = hm["name"].(string)
		dests, _ := hm["route"].([]any)
		for _, d := range dests {
			dm, _ := d.(map[string]any)
			dst, _ := dm["destination"].(map[string]any)
			b := rollout.Backend{}
			b.Host, _ = dst["host"].(string)
			b.Subset, _ = dst["subset"].(string)
			w, _ := weightOf(dm["weight"])
			b.Weight = int(w)
			views[i].Backends = append(views[i].Backends, b)
		}
	}
	p, err := t.Pick(ns, views)
	switch {
	case errors.Is(err, rollout.ErrRouteAmbiguous):
		return route{}, fmt.Errorf("%w: %w", ErrAmbiguousRoute, err)
	case err != nil:
		return route{}, fmt.Errorf("%w: %w", ErrRouteNotFound, err)
	}
	r := route{HTTP: p.Route, Name: views[p.Route].Name, Stable: p.Stable, Canary: p.Canary, Others: int64(p.Others)}
	return r, nil
}

// label names the route for messages: its name, or its index.
func (r route) label() string {
	if r.Name != "" {
		return fmt.Sprintf("%q", r.Name)
	}
	return fmt.Sprintf("#%d", r.HTTP)
}

// weightsAt reads the stable and canary weights of route r. A destination
// without a weight has weight 0 (the route has at least two destinations).
func weightsAt(vsSpec map[string]any, r route) (rollout.Weights, error) {
	dests := routeDests(vsSpec, r)
	st, err := weightOf(dests[r.Stable].(map[string]any)["weight"])
	if err != nil {
		return rollout.Weights{}, fmt.Errorf("stable weight: %w", err)
	}
	ca, err := weightOf(dests[r.Canary].(map[string]any)["weight"])
	if err != nil {
		return rollout.Weights{}, fmt.Errorf("canary weight: %w", err)
	}
	return rollout.Weights{Stable: int(st), Canary: int(ca)}, nil
}

// setWeightsAt writes w into route r, checking first that w and the route's
// other destinations sum to 100. It changes nothing else.
func setWeightsAt(vsSpec map[string]any, r route, w rollout.Weights) error {
	if !w.Valid() {
		return fmt.Errorf("%w: %s", ErrBadWeights, w)
	}
	if r.Others != 0 {
		return fmt.Errorf("%w: http route %s sends weight %d to other destinations, so %s would sum to %d",
			ErrBadWeights, r.label(), r.Others, w, int64(w.Stable+w.Canary)+r.Others)
	}
	dests := routeDests(vsSpec, r)
	dests[r.Stable].(map[string]any)["weight"] = int64(w.Stable)
	dests[r.Canary].(map[string]any)["weight"] = int64(w.Canary)
	return nil
}

// routeDests returns the destinations of route r, which findRoute found.
func routeDests(vsSpec map[string]any, r route) []any {
	https := vsSpec["http"].([]any)
	return https[r.HTTP].(map[string]any)["route"].([]any)
}

// weightOf reads a weight as JSON decoders leave it; absent is 0.
func weightOf(v any) (int64, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case float64:
		if n != math.Trunc(n) || n < math.MinInt32 || n > math.MaxInt32 {
			return 0, fmt.Errorf("weight %v is not an integer", n)
		}
		return int64(n), nil
	case json.Number:
		return n.Int64()
	}
	return 0, fmt.Errorf("weight %v is a %T, not a number", v, v)
}
