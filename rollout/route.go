package rollout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The kinds of object a rollout can step the weights of.
const (
	KindVirtualService = "VirtualService"
	KindGRPCRoute      = "GRPCRoute"
	KindHTTPRoute      = "HTTPRoute"
)

// RouteKinds lists the Gateway API route kinds spec.route may name.
var RouteKinds = []string{KindGRPCRoute, KindHTTPRoute}

// ClusterDomain is the DNS suffix short Service names resolve under, as Istio assumes.
const ClusterDomain = "cluster.local"

// RouteRef is spec.route. Written as a string it names one http route of the spec's
// VirtualService (HTTP); written as a mapping it names a Gateway API route object (a
// GRPCRoute or an HTTPRoute) and, by rule, which of its rules holds the two backends.
type RouteRef struct {
	// HTTP is the name of the VirtualService's http route, when spec.route is a string.
	HTTP string `yaml:"-"`

	Kind      string `yaml:"kind"`
	Namespace string `yaml:"namespace"`
	Name      string `yaml:"name"`
	// Rule is the rule's name, or its index among the object's rules; empty means the
	// only rule whose backendRefs hold both the stable and the canary Service.
	Rule string `yaml:"rule"`
	// Port, when set, is the port both backendRefs must name.
	Port int `yaml:"port"`
}

// IsObject reports whether spec.route was written as a mapping naming a route object.
func (r RouteRef) IsObject() bool {
	return r.HTTP == "" && (r.Kind != "" || r.Namespace != "" || r.Name != "" || r.Rule != "" || r.Port != 0)
}

// Target is what a rollout steps, whatever its kind: one route (an http route of a
// VirtualService, or a rule of a Gateway API route) of one object, and the stable and
// canary backends in it.
type Target struct {
	Kind      string // KindVirtualService, KindGRPCRoute or KindHTTPRoute
	Namespace string
	Name      string
	// Route is the route's name (or, for a Gateway API route, its index); empty means the
	// only route that holds both backends.
	Route string
	// Host is the VirtualService destinations' host; empty matches any host. Gateway API
	// backends name their Service in Stable and Canary instead.
	Host string
	// Stable and Canary are subsets of Host for a VirtualService, Service names for a
	// Gateway API route.
	Stable, Canary string
	// Port, when not 0, is the port a Gateway API backend must name.
	Port int
}

// Target returns what the spec steps.
func (s *Spec) Target() Target {
	if s.Route.IsObject() {
		r := s.Route
		return Target{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Route: r.Rule,
			Stable: s.Stable, Canary: s.Canary, Port: r.Port}
	}
	return Target{Kind: KindVirtualService, Namespace: s.VirtualService.Namespace, Name: s.VirtualService.Name,
		Route: s.Route.HTTP, Host: s.Host, Stable: s.Stable, Canary: s.Canary}
}

// Gateway reports whether the target is a Gateway API route.
func (t Target) Gateway() bool { return t.Kind == KindGRPCRoute || t.Kind == KindHTTPRoute }

// String names the target for messages, e.g. `grpcroute default/grpc-route rule "0"`.
func (t Target) String() string {
	s := strings.ToLower(t.Kind) + " " + t.Namespace + "/" + t.Name
	if t.Route != "" {
		s += " " + t.routeWord() + " " + strconv.Quote(t.Route)
	}
	return s
}

func (t Target) routeWord() string {
	if t.Gateway() {
		return "rule"
	}
	return "http route"
}

// Errors of Pick. A *RouteError wraps one of them.
var (
	// ErrRouteNotFound: no route is named as the target says, or none holds both backends.
	ErrRouteNotFound = errors.New("route not found")
	// ErrRouteAmbiguous: several routes (or backends) match and the target names none.
	ErrRouteAmbiguous = errors.New("route is ambiguous")
	// ErrBackendMissing: the named route lacks the stable or the canary backend.
	ErrBackendMissing = errors.New("backend missing")
)

// RouteView is one route of an object as Pick sees it: an http route of a VirtualService
// or a rule of a GRPCRoute or HTTPRoute. Builders (the YAML editor, the routers) fill it
// from what they read; Line and Col are where it is written, 0 when unknown.
type RouteView struct {
	Name      string
	Backends  []Backend
	Line, Col int
}

// Backend is one weighted destination of a route: a VirtualService destination (Host and
// Subset) or a Gateway API backendRef (Host is the Service name, Namespace its namespace
// when written, Port its port; Service false for a backendRef of another kind).
type Backend struct {
	Host      string
	Namespace string
	Subset    string
	Port      int
	Service   bool
	// Weight is the backend's weight as its kind defaults it (a VirtualService destination
	// without one has 0, a backendRef 1).
	Weight    int
	Line, Col int
}

// Pick is the route of an object that holds a target's two backends.
type Pick struct {
	Route          int // index into the views
	Stable, Canary int // indexes into that route's Backends
	// Others is the summed weight of the route's other backends.
	Others int
}

// RouteError is why Pick found no route, with where it looked (0 when unknown).
type RouteError struct {
	Err       error // ErrRouteNotFound, ErrRouteAmbiguous or ErrBackendMissing
	Msg       string
	Line, Col int
}

func (e *RouteError) Error() string { return e.Msg }
func (e *RouteError) Unwrap() error { return e.Err }

// Pick returns the route of an object in namespace ns that holds the target's stable and
// canary backends: the route named t.Route (for a Gateway API route, else the route at that
// index), or else the only route that holds both. Hosts compare as Istio resolves them:
// a short name is a Service in ns ("a", "a.ns" and "a.ns.svc.cluster.local" are one host).
// Its error is a *RouteError.
func (t Target) Pick(ns string, routes []RouteView) (Pick, error) {
	if t.Route != "" {
		i, err := t.named(routes)
		if err != nil {
			return Pick{}, err
		}
		p, err := t.holds(ns, routes[i], i)
		p.Route = i
		return p, err
	}
	var found []Pick
	for i := range routes {
		p, err := t.holds(ns, routes[i], i)
		if errors.Is(err, ErrBackendMissing) {
			continue
		}
		if err != nil {
			return Pick{}, err
		}
		p.Route = i
		found = append(found, p)
	}
	switch len(found) {
	case 0:
		return Pick{}, &RouteError{Err: ErrRouteNotFound,
			Msg: fmt.Sprintf("%s: no %s holds both %s", t, t.routeWord(), t.both())}
	case 1:
		return found[0], nil
	}
	labels := make([]string, len(found))
	for i, p := range found {
		labels[i] = label(routes[p.Route], p.Route)
	}
	r := routes[found[1].Route]
	return Pick{}, &RouteError{Err: ErrRouteAmbiguous, Line: r.Line, Col: r.Col,
		Msg: fmt.Sprintf("%s: %ss %s all hold %s; name one with spec.route", t, t.routeWord(), strings.Join(labels, ", "), t.both())}
}

// named returns the index of the route t.Route names.
func (t Target) named(routes []RouteView) (int, error) {
	idx, n := -1, 0
	for i, r := range routes {
		if r.Name == t.Route {
			idx, n = i, n+1
		}
	}
	if n > 1 {
		return 0, &RouteError{Err: ErrRouteAmbiguous, Line: routes[idx].Line, Col: routes[idx].Col,
			Msg: fmt.Sprintf("%s: %d %ss are named %q", t, n, t.routeWord(), t.Route)}
	}
	if n == 1 {
		return idx, nil
	}
	if i, err := strconv.Atoi(t.Route); err == nil && t.Gateway() && i >= 0 && strconv.Itoa(i) == t.Route {
		if i < len(routes) {
			return i, nil
		}
		return 0, &RouteError{Err: ErrRouteNotFound,
			Msg: fmt.Sprintf("%s: there is no rule %d (the route has %d)", t, i, len(routes))}
	}
	return 0, &RouteError{Err: ErrRouteNotFound, Msg: fmt.Sprintf("%s: no %s is named %q", t, t.routeWord(), t.Route)}
}

// holds finds the stable and canary backends of one route.
func (t Target) holds(ns string, r RouteView, i int) (Pick, error) {
	p := Pick{Stable: -1, Canary: -1}
	for j, b := range r.Backends {
		slot := (*int)(nil)
		switch {
		case t.is(ns, b, t.Stable):
			slot = &p.Stable
		case t.is(ns, b, t.Canary):
			slot = &p.Canary
		default:
			p.Others += b.Weight
			continue
		}
		if *slot >= 0 {
			return Pick{}, &RouteError{Err: ErrRouteAmbiguous, Line: b.Line, Col: b.Col,
				Msg: fmt.Sprintf("%s: %s %s holds %s twice", t, t.routeWord(), label(r, i), t.backend(t.name(slot == &p.Stable)))}
		}
		*slot = j
	}
	for _, c := range []struct {
		at     int
		stable bool
	}{{p.Stable, true}, {p.Canary, false}} {
		if c.at < 0 {
			return Pick{}, &RouteError{Err: ErrBackendMissing, Line: r.Line, Col: r.Col,
				Msg: fmt.Sprintf("%s: %s %s has no %s", t, t.routeWord(), label(r, i), t.backend(t.name(c.stable)))}
		}
	}
	return p, nil
}

func (t Target) name(stable bool) string {
	if stable {
		return t.Stable
	}
	return t.Canary
}

// is reports whether backend b is the target's backend called name (a subset, or a Service).
func (t Target) is(ns string, b Backend, name string) bool {
	if !t.Gateway() {
		return b.Subset == name && (t.Host == "" || SameHost(b.Host, t.Host, ns))
	}
	bns := b.Namespace
	if bns == "" {
		bns = ns
	}
	return b.Service && b.Host == name && bns == ns && (t.Port == 0 || b.Port == t.Port)
}

// backend describes the backend called name for messages.
func (t Target) backend(name string) string {
	switch {
	case t.Gateway() && t.Port != 0:
		return fmt.Sprintf("backendRef to Service %q port %d", name, t.Port)
	case t.Gateway():
		return fmt.Sprintf("backendRef to Service %q", name)
	case t.Host != "":
		return fmt.Sprintf("destination with subset %q of host %q", name, t.Host)
	}
	return fmt.Sprintf("destination with subset %q", name)
}

func (t Target) both() string {
	if t.Gateway() {
		return fmt.Sprintf("backendRefs to Services %q and %q", t.Stable, t.Canary)
	}
	return fmt.Sprintf("subsets %q and %q of host %q", t.Stable, t.Canary, t.Host)
}

// label names a route for messages: its name, or its index (i, when known).
func label(r RouteView, i int) string {
	switch {
	case r.Name != "":
		return strconv.Quote(r.Name)
	case r.Line > 0:
		return fmt.Sprintf("at line %d", r.Line)
	case i >= 0:
		return fmt.Sprintf("#%d", i)
	}
	return "(unnamed)"
}

// FQDN returns the fully qualified name of a Service host written in namespace ns, as
// Kubernetes DNS and Istio resolve it: "a" is a.ns.svc.cluster.local, "a.b" is
// a.b.svc.cluster.local, "a.b.svc" is a.b.svc.cluster.local; longer names and wildcards
// stay as written. A trailing dot is dropped.
func FQDN(host, ns string) string {
	host = strings.TrimSuffix(host, ".")
	if host == "" || strings.HasPrefix(host, "*") {
		return host
	}
	switch parts := strings.Split(host, "."); {
	case len(parts) == 1:
		return host + "." + ns + ".svc." + ClusterDomain
	case len(parts) == 2:
		return host + ".svc." + ClusterDomain
	case len(parts) == 3 && parts[2] == "svc":
		return host + "." + ClusterDomain
	}
	return host
}

// SameHost reports whether two hosts written in an object of namespace ns name the same
// Service (see FQDN).
func SameHost(a, b, ns string) bool { return FQDN(a, ns) == FQDN(b, ns) }
