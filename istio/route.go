package istio

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

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

// findRoute finds the route the spec manages in a VirtualService's spec, by
// the rule gitops uses on the manifest: the http route named spec.Route, or
// else the only http route whose destinations hold both the stable and the
// canary subset of spec.Host (hosts compare as written). Its errors wrap
// ErrRouteNotFound or ErrAmbiguousRoute.
func findRoute(vsSpec map[string]any, s *rollout.Spec) (route, error) {
	https, _ := vsSpec["http"].([]any)
	if s.Route.HTTP != "" {
		return namedRoute(https, s)
	}
	var found []route
	for i, h := range https {
		hm, _ := h.(map[string]any)
		r, err := destinations(hm, i, s)
		if err != nil {
			if _, ok := err.(missingSubsetError); ok {
				continue
			}
			return route{}, err
		}
		found = append(found, r)
	}
	switch len(found) {
	case 0:
		return route{}, fmt.Errorf("%w: no http route holds both subsets %q and %q of host %q",
			ErrRouteNotFound, s.Stable, s.Canary, s.Host)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, r := range found {
		names[i] = r.label()
	}
	return route{}, fmt.Errorf("%w: http routes %s all hold subsets %q and %q of host %q; name one with spec.route",
		ErrAmbiguousRoute, strings.Join(names, ", "), s.Stable, s.Canary, s.Host)
}

// namedRoute finds the one http route named s.Route.HTTP and both its subsets.
func namedRoute(https []any, s *rollout.Spec) (route, error) {
	idx := -1
	for i, h := range https {
		hm, _ := h.(map[string]any)
		if name, _ := hm["name"].(string); name == s.Route.HTTP {
			if idx >= 0 {
				return route{}, fmt.Errorf("%w: several http routes are named %q", ErrAmbiguousRoute, s.Route.HTTP)
			}
			idx = i
		}
	}
	if idx < 0 {
		return route{}, fmt.Errorf("%w: no http route is named %q", ErrRouteNotFound, s.Route.HTTP)
	}
	hm, _ := https[idx].(map[string]any)
	r, err := destinations(hm, idx, s)
	if err != nil {
		return route{}, fmt.Errorf("%w: http route %q: %w", ErrRouteNotFound, s.Route.HTTP, err)
	}
	return r, nil
}

// missingSubsetError says a route lacks a destination for a subset.
type missingSubsetError struct{ host, subset string }

func (e missingSubsetError) Error() string {
	return fmt.Sprintf("no destination for subset %q of host %q", e.subset, e.host)
}

// destinations finds the stable and canary destinations of one http route.
// A subset held twice is ambiguous.
func destinations(hm map[string]any, idx int, s *rollout.Spec) (route, error) {
	r := route{HTTP: idx, Stable: -1, Canary: -1}
	r.Name, _ = hm["name"].(string)
	dests, _ := hm["route"].([]any)
	for j, d := range dests {
		dm, _ := d.(map[string]any)
		dst, _ := dm["destination"].(map[string]any)
		host, _ := dst["host"].(string)
		subset, _ := dst["subset"].(string)
		slot := (*int)(nil)
		switch {
		case host == s.Host && subset == s.Stable:
			slot = &r.Stable
		case host == s.Host && subset == s.Canary:
			slot = &r.Canary
		default:
			w, _ := weightOf(dm["weight"])
			r.Others += w
			continue
		}
		if *slot >= 0 {
			return route{}, fmt.Errorf("%w: http route %s holds subset %q of host %q twice",
				ErrAmbiguousRoute, r.label(), subset, s.Host)
		}
		*slot = j
	}
	switch {
	case r.Stable < 0:
		return route{}, missingSubsetError{s.Host, s.Stable}
	case r.Canary < 0:
		return route{}, missingSubsetError{s.Host, s.Canary}
	}
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
