package gitops

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/canarydio/canaryd/rollout"
)

// shape is where a kind keeps its routes and their weighted destinations.
type shape struct {
	routes, dests string // spec.<routes>[i].<dests>[j]
	defWeight     int    // the weight of a destination that names none
}

var (
	vsShape      = shape{routes: "http", dests: "route", defWeight: 0}
	gatewayShape = shape{routes: "rules", dests: "backendRefs", defWeight: 1}
)

func shapeOf(kind string) shape {
	if kind == rollout.KindGRPCRoute || kind == rollout.KindHTTPRoute {
		return gatewayShape
	}
	return vsShape
}

// location is where ref's route is in a manifest.
type location struct {
	shape
	doc, route     int // indexes of the document and of the route
	stable, canary *destination
	others         int // the sum of the weights of the route's other destinations
}

// destination is one entry of a route's destination list.
type destination struct {
	index int
	item  *yaml.Node // the mapping holding the destination and its weight:
	// key is the key a flow-style weight is inserted before; a block-style weight goes on a
	// line of its own after the last line of value, at key's indentation.
	key       *yaml.Node
	value     *yaml.Node
	weight    *yaml.Node // the weight value; nil when missing
	defWeight int
}

func (l *location) weights() (rollout.Weights, error) {
	s, err := weightOf(l.stable)
	if err != nil {
		return rollout.Weights{}, err
	}
	c, err := weightOf(l.canary)
	if err != nil {
		return rollout.Weights{}, err
	}
	return rollout.Weights{Stable: s, Canary: c}, nil
}

// weightOf returns a destination's weight: a whole number 0..100, or its kind's default
// when missing (0 for a VirtualService, 1 for a Gateway API backendRef).
func weightOf(d *destination) (int, error) {
	if d.weight == nil {
		return d.defWeight, nil
	}
	n := d.weight
	if n.Kind != yaml.ScalarNode {
		return 0, fmt.Errorf("weight at line %d is not a number: %w", n.Line, ErrWeights)
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < 0 || v > 100 || n.Value != strconv.Itoa(v) {
		return 0, fmt.Errorf("weight %q at line %d is not a whole number 0..100: %w", n.Value, n.Line, ErrWeights)
	}
	return v, nil
}

// locate finds ref's route in data: it finds the object, builds the domain's view of its
// routes, and lets the domain's rule pick.
func locate(data []byte, ref VSRef) (*location, error) {
	docs, err := parseDocs(data)
	if err != nil {
		return nil, err
	}
	return locateIn(docs, ref)
}

// locateIn is locate over a manifest already parsed into docs.
func locateIn(docs []*yaml.Node, ref VSRef) (*location, error) {
	return locateAmong(docs, nil, ref)
}

// locateAmong is locateIn looking only at the documents at among (all when nil), which
// must hold every document that could define ref's object.
func locateAmong(docs []*yaml.Node, among []int, ref VSRef) (*location, error) {
	t := ref.target()
	di, obj, err := findObject(docs, among, t)
	if err != nil {
		return nil, err
	}
	sh := shapeOf(t.Kind)
	views, dests, err := routeViews(obj, sh)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	ns := scalarAt(obj, "metadata", "namespace")
	if ns == "" {
		ns = ref.Namespace
	}
	p, err := t.Pick(ns, views)
	if err != nil {
		return nil, routeErr(err)
	}
	loc := &location{shape: sh, doc: di, route: p.Route,
		stable: dests[p.Route][p.Stable], canary: dests[p.Route][p.Canary]}
	for j, d := range dests[p.Route] {
		if j == p.Stable || j == p.Canary {
			continue
		}
		w, err := weightOf(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		loc.others += w
	}
	return loc, nil
}

// routeErr wraps the domain rule's refusal with the editor's sentinel for it.
func routeErr(err error) error {
	switch {
	case errors.Is(err, rollout.ErrRouteAmbiguous):
		return fmt.Errorf("%w: %w", err, ErrAmbiguous)
	case errors.Is(err, rollout.ErrBackendMissing):
		return fmt.Errorf("%w: %w", err, ErrSubset)
	}
	return fmt.Errorf("%w: %w", err, ErrNoRoute)
}

// findObject returns the index and the top mapping of the target's object among docs.
func findObject(docs []*yaml.Node, among []int, t rollout.Target) (int, *yaml.Node, error) {
	exact, loose := -1, -1
	var exactN, looseN int
	if among == nil {
		among = make([]int, len(docs))
		for i := range among {
			among[i] = i
		}
	}
	for _, i := range among {
		d := docs[i]
		if d.Kind != yaml.DocumentNode || len(d.Content) != 1 || d.Content[0].Kind != yaml.MappingNode {
			continue
		}
		top := d.Content[0]
		if scalarAt(top, "kind") != t.Kind || scalarAt(top, "metadata", "name") != t.Name {
			continue
		}
		switch scalarAt(top, "metadata", "namespace") {
		case t.Namespace:
			exact, exactN = i, exactN+1
		case "":
			loose, looseN = i, looseN+1
		}
	}
	obj := strings.ToLower(t.Kind) + " " + t.Namespace + "/" + t.Name
	switch {
	case exactN == 1:
		return exact, docs[exact].Content[0], nil
	case exactN > 1:
		return 0, nil, fmt.Errorf("%s is defined %d times: %w", obj, exactN, ErrAmbiguous)
	case looseN == 1:
		return loose, docs[loose].Content[0], nil
	case looseN > 1:
		return 0, nil, fmt.Errorf("%s (no namespace) is defined %d times: %w", obj, looseN, ErrAmbiguous)
	}
	return 0, nil, fmt.Errorf("%s: %w", obj, ErrNotFound)
}

// routeViews builds the domain's view of an object's routes, and the destinations behind
// each view's backends.
func routeViews(obj *yaml.Node, sh shape) ([]rollout.RouteView, [][]*destination, error) {
	spec, err := field(obj, "spec")
	if err != nil {
		return nil, nil, err
	}
	routes, err := field(spec, sh.routes)
	if err != nil || routes == nil || routes.Kind != yaml.SequenceNode {
		return nil, nil, err
	}
	views := make([]rollout.RouteView, len(routes.Content))
	dests := make([][]*destination, len(routes.Content))
	for i, r := range routes.Content {
		if r.Kind == yaml.AliasNode {
			return nil, nil, fmt.Errorf("alias %s at line %d: %w", sh.routes, r.Line, ErrUnsupported)
		}
		views[i] = rollout.RouteView{Name: scalarAt(r, "name"), Line: r.Line, Col: r.Column}
		list, err := field(r, sh.dests)
		if err != nil {
			return nil, nil, err
		}
		if list == nil || list.Kind != yaml.SequenceNode {
			continue
		}
		for j, item := range list.Content {
			d, b, err := readDestination(item, j, sh)
			if err != nil {
				return nil, nil, err
			}
			if d != nil {
				views[i].Backends = append(views[i].Backends, b)
				dests[i] = append(dests[i], d)
			}
		}
	}
	return views, dests, nil
}

// readDestination reads one entry of a route's destination list; nil when it has none.
func readDestination(item *yaml.Node, index int, sh shape) (*destination, rollout.Backend, error) {
	if item.Kind == yaml.AliasNode {
		return nil, rollout.Backend{}, fmt.Errorf("alias destination at line %d: %w", item.Line, ErrUnsupported)
	}
	if item.Kind != yaml.MappingNode || len(item.Content) == 0 {
		return nil, rollout.Backend{}, nil
	}
	d := &destination{index: index, item: item, defWeight: sh.defWeight}
	var err error
	if d.weight, err = field(item, "weight"); err != nil {
		return nil, rollout.Backend{}, err
	}
	b := rollout.Backend{Line: item.Line, Col: item.Column}
	if sh == vsShape {
		for i := 0; i+1 < len(item.Content); i += 2 {
			if k := item.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "destination" {
				d.key = k
			}
		}
		if d.key == nil {
			return nil, rollout.Backend{}, nil
		}
		if d.value, err = field(item, "destination"); err != nil {
			return nil, rollout.Backend{}, err
		}
		b.Host, b.Subset = scalarAt(d.value, "host"), scalarAt(d.value, "subset")
	} else {
		d.key, d.value = item.Content[0], item
		b.Host, b.Namespace = scalarAt(item, "name"), scalarAt(item, "namespace")
		b.Port, _ = strconv.Atoi(scalarAt(item, "port"))
		kind, group := scalarAt(item, "kind"), scalarAt(item, "group")
		b.Service = (kind == "" || kind == "Service") && (group == "" || group == "core")
	}
	if b.Weight, err = weightOf(d); err != nil {
		b.Weight = 0 // counted only when the backend is in the route picked, and then refused
	}
	return d, b, nil
}
