package gitops

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/go-git/go-git/v5/plumbing"
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
	plain []int8           // per document: 0 not yet known, 1 plain (see plainDoc), -1 not
	blob  plumbing.Hash    // the blob data is, when read from one (the key it is cached by)
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
	if len(es) == 0 || m.onlySwapsDigits(es) {
		return nil
	}
	return m.verifyByParse(es)
}

// verifyByParse is verifyAll's full check: it parses the edited text, reads every route
// back and compares the decoded documents, weights aside.
func (m *manifest) verifyByParse(es []routeEdit) error {
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

// onlySwapsDigits reports whether the edits pass the check of verifyAll without parsing
// the edited text again, which would cost as much as the first parse (a tick of thousands
// of rollouts parses thousands of manifests). That holds when every edit replaces a weight
// scalar the parse found, in place, by another weight of the same quoting (replaceScalar
// checked that the bytes replaced are that scalar as written), no two edits touch one
// route, and each edited document is plain (plainDoc). Then the text of the new digits
// parses to the same tokens as the old, ended by the same bytes, the route reads back the
// new weights, and no other value can change: nothing aliases the weight, and no mapping
// key or tag gives the document a meaning beyond its text. Anything else, such as a weight
// inserted where there was none, is parsed again. FuzzVerifyShortcut holds the shortcut to
// the full check.
func (m *manifest) onlySwapsDigits(es []routeEdit) bool {
	type routeAt struct{ doc, route int }
	routes := map[routeAt]bool{}
	var all []edit
	for _, e := range es {
		at := routeAt{e.loc.doc, e.loc.route}
		if routes[at] || !m.plainDoc(e.loc.doc) {
			return false
		}
		routes[at] = true
		for _, ed := range e.edits {
			if ed.n == 0 || !weightText(m.data[ed.off:ed.off+ed.n]) || !weightText([]byte(ed.text)) ||
				quoteOf(m.data[ed.off:ed.off+ed.n]) != quoteOf([]byte(ed.text)) {
				return false
			}
			all = append(all, ed)
		}
	}
	slices.SortFunc(all, func(a, b edit) int { return a.off - b.off })
	for i := 1; i < len(all); i++ {
		if all[i-1].off+all[i-1].n > all[i].off {
			return false
		}
	}
	return true
}

// weightText reports whether b is a weight as replaceScalar writes one: decimal digits
// without a leading zero, bare or in double or single quotes.
func weightText(b []byte) bool {
	b, ok := unquoted(b)
	if !ok || len(b) == 0 || len(b) > 3 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// unquoted is b inside its quotes when it is quoted, else b; it is false when b opens a
// quote it does not close.
func unquoted(b []byte) ([]byte, bool) {
	q := quoteOf(b)
	if q == 0 {
		return b, true
	}
	if len(b) < 2 || b[len(b)-1] != q {
		return nil, false
	}
	return b[1 : len(b)-1], true
}

// quoteOf returns b's opening quote, or 0 when b is bare.
func quoteOf(b []byte) byte {
	if len(b) > 0 && (b[0] == '"' || b[0] == '\'') {
		return b[0]
	}
	return 0
}

// plainDoc reports whether document i is plain YAML, as Kubernetes manifests are: no
// aliases, no explicit tags, and every mapping key a string written once (so no merge
// keys). Every value of a plain document decodes from its own text alone, and decoding
// cannot fail on it.
func (m *manifest) plainDoc(i int) bool {
	if m.plain == nil {
		m.plain = make([]int8, len(m.docs))
	}
	if m.plain[i] == 0 {
		m.plain[i] = -1
		if plainNode(m.docs[i]) {
			m.plain[i] = 1
		}
	}
	return m.plain[i] == 1
}

func plainNode(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode || n.Style&yaml.TaggedStyle != 0 {
		return false
	}
	if n.Kind == yaml.MappingNode {
		if len(n.Content)%2 != 0 {
			return false
		}
		var keys map[string]bool
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
				return false
			}
			if keys == nil {
				keys = make(map[string]bool, len(n.Content)/2)
			}
			if keys[k.Value] {
				return false
			}
			keys[k.Value] = true
		}
	}
	for _, c := range n.Content {
		if !plainNode(c) {
			return false
		}
	}
	return true
}

// advanced returns the manifest the edits es make of m, parsed without parsing: es only
// swap weight digits (onlySwapsDigits holds), so the parse of the edited text is m's with
// those weights' values changed and every node after one of them on its line moved by the
// change in length. Documents es does not edit are shared with m (parsed manifests are
// never changed); the others are copied. FuzzVerifyShortcut holds the result to a parse.
func (m *manifest) advanced(es []routeEdit) *manifest {
	type moved struct{ col, by int }
	values := map[*yaml.Node]string{}
	lines := map[int][]moved{}
	docs := map[int]bool{}
	for _, e := range es {
		if len(e.edits) == 0 {
			continue
		}
		for k, d := range []*destination{e.loc.stable, e.loc.canary} {
			ed, n := e.edits[k], d.weight
			v, _ := unquoted([]byte(ed.text)) // onlySwapsDigits passed it: a weight, quoted or bare
			values[n] = string(v)
			lines[n.Line] = append(lines[n.Line], moved{col: n.Column, by: len(ed.text) - ed.n})
		}
		docs[e.loc.doc] = true
	}
	var clone func(n *yaml.Node) *yaml.Node
	clone = func(n *yaml.Node) *yaml.Node {
		c := *n
		if v, ok := values[n]; ok {
			c.Value = v
		}
		for _, mv := range lines[n.Line] {
			if n.Column > mv.col {
				c.Column += mv.by
			}
		}
		if n.Content != nil {
			c.Content = make([]*yaml.Node, len(n.Content))
			for i, child := range n.Content {
				c.Content[i] = clone(child)
			}
		}
		return &c
	}
	out := &manifest{data: m.apply(es), docs: slices.Clone(m.docs), named: m.named, plain: slices.Clone(m.plain)}
	for i := range docs {
		out.docs[i] = clone(m.docs[i])
	}
	return out
}
