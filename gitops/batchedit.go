package gitops

import (
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/canarydio/canaryd/rollout"
)

// manifest is one manifest file parsed once for the edits of many routes (a batch of
// writes to rollouts whose VirtualServices share the file): each route is read and edited
// from the one parse, and the edits are checked together.
type manifest struct {
	data  []byte
	docs  []*yaml.Node
	src   *source
	named map[string][]int // "kind/name" → the documents defining such an object
}

// among returns the documents that could define t's object, so that a file of many
// VirtualServices is not searched through once per route.
func (m *manifest) among(t rollout.Target) []int {
	if m.named == nil {
		m.named = map[string][]int{}
		for i, d := range m.docs {
			if d.Kind != yaml.DocumentNode || len(d.Content) != 1 || d.Content[0].Kind != yaml.MappingNode {
				continue
			}
			top := d.Content[0]
			k := scalarAt(top, "kind") + "/" + scalarAt(top, "metadata", "name")
			m.named[k] = append(m.named[k], i)
		}
	}
	if among := m.named[t.Kind+"/"+t.Name]; among != nil {
		return among
	}
	return []int{}
}

// parseManifest parses data for reading and editing many routes.
func parseManifest(data []byte) (*manifest, error) {
	docs, err := parseDocs(data)
	if err != nil {
		return nil, err
	}
	return &manifest{data: data, docs: docs}, nil
}

// routeEdit is the edit of one route's weights in a manifest.
type routeEdit struct {
	ref   VSRef
	loc   *location
	w     rollout.Weights
	edits []edit // none when the route already holds w
}

// read returns ref's route and its weights, as ReadWeights does.
func (m *manifest) read(ref VSRef) (*location, rollout.Weights, error) {
	loc, err := locateAmong(m.docs, m.among(ref.target()), ref)
	if err != nil {
		return nil, rollout.Weights{}, err
	}
	w, err := loc.weights()
	if err != nil {
		return nil, rollout.Weights{}, err
	}
	if !w.Valid() || loc.others != 0 {
		return nil, w, fmt.Errorf("%s: %s=%d, %s=%d, others %d: %w",
			ref, ref.Stable, w.Stable, ref.Canary, w.Canary, loc.others, ErrWeights)
	}
	return loc, w, nil
}

// edit returns the edit that sets the route at loc (holding cur) to w, as SetWeights
// would make it; it is checked later, with the others of the file, by verify.
func (m *manifest) edit(ref VSRef, loc *location, cur, w rollout.Weights) (routeEdit, error) {
	e := routeEdit{ref: ref, loc: loc, w: w}
	if !w.Valid() {
		return e, fmt.Errorf("set %s to %s: %w", ref, w, ErrWeights)
	}
	if cur == w {
		return e, nil
	}
	if m.src == nil {
		m.src = newSource(m.data)
	}
	for _, d := range []struct {
		dest *destination
		val  int
	}{{loc.stable, w.Stable}, {loc.canary, w.Canary}} {
		ed, err := m.src.weightEdit(d.dest, d.val)
		if err != nil {
			return e, fmt.Errorf("%s: %w", ref, err)
		}
		e.edits = append(e.edits, ed)
	}
	return e, nil
}

// apply returns the manifest with the edits applied; es must not overlap.
func (m *manifest) apply(es []routeEdit) []byte {
	var all []edit
	for _, e := range es {
		all = append(all, e.edits...)
	}
	if len(all) == 0 {
		return m.data
	}
	return applyEdits(m.data, all)
}

// verify checks edits together, as SetWeights checks one: the edited manifest parses, holds
// every route's new weights, and decodes to the same values as before apart from those
// weights. When the edits together fail the check, each is checked on its own, and the
// errors of those that fail are returned by index (nil when all pass).
func (m *manifest) verify(es []routeEdit) map[int]error {
	if m.verifyAll(es) == nil {
		return nil
	}
	bad := map[int]error{}
	for i, e := range es {
		if len(e.edits) == 0 {
			continue
		}
		if err := verifyEdit(m.data, m.apply(es[i:i+1]), e.ref, e.w, e.loc); err != nil {
			bad[i] = fmt.Errorf("%s: edit self-check: %w", e.ref, err)
		}
	}
	if len(bad) == 0 { // each passes alone, yet not together: refuse them all
		for i := range es {
			bad[i] = fmt.Errorf("%s: edits of one batch overlap: %w", es[i].ref, ErrUnsupported)
		}
	}
	return bad
}

func (m *manifest) verifyAll(es []routeEdit) error {
	es = slices.DeleteFunc(slices.Clone(es), func(e routeEdit) bool { return len(e.edits) == 0 })
	if len(es) == 0 {
		return nil
	}
	out := m.apply(es)
	after, err := parseManifest(out)
	if err != nil {
		return err
	}
	for _, e := range es {
		if _, got, err := after.read(e.ref); err != nil || got != e.w {
			return fmt.Errorf("%s: wrote %s, read back %s (%v): %w", e.ref, e.w, got, err, ErrUnsupported)
		}
	}
	before, err := decodeNodes(m.docs) // from the parses at hand: no third pass over the text
	if err != nil {
		return err
	}
	decoded, err := decodeNodes(after.docs)
	if err != nil {
		return err
	}
	if len(before) != len(decoded) {
		return fmt.Errorf("%d documents became %d: %w", len(before), len(decoded), ErrUnsupported)
	}
	for _, docs := range [][]any{before, decoded} {
		for _, e := range es {
			for _, i := range []int{e.loc.stable.index, e.loc.canary.index} {
				if !dropWeight(docs[e.loc.doc], e.loc.shape, e.loc.route, i) {
					return fmt.Errorf("route %d destination %d not found after edit: %w", e.loc.route, i, ErrUnsupported)
				}
			}
		}
	}
	if !reflect.DeepEqual(before, decoded) {
		return fmt.Errorf("the edits changed more than the weights: %w", ErrUnsupported)
	}
	return nil
}
