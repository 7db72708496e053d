package gitops

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/canarydio/canaryd/rollout"
)

// Errors of the YAML weight editor. Every refusal wraps one of them, so callers can tell a
// broken manifest from a Git failure with errors.Is.
var (
	// ErrParse reports a manifest that is not valid YAML.
	ErrParse = errors.New("manifest does not parse")
	// ErrNotFound reports that no document of the manifest is the VirtualService (or the
	// GRPCRoute or HTTPRoute) the rollout names.
	ErrNotFound = errors.New("route object not found")
	// ErrNoRoute reports that no http route matches (by name, or by holding both subsets).
	ErrNoRoute = errors.New("route not found")
	// ErrAmbiguous reports that the route, a subset or the VirtualService matches more than once.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrSubset reports that the route lacks the stable or the canary subset (for a
	// Gateway API route, backendRef).
	ErrSubset = errors.New("backend missing")
	// ErrWeights reports weights that are not whole numbers summing to 100.
	ErrWeights = errors.New("weights do not sum to 100")
	// ErrUnsupported reports YAML the editor refuses to touch (anchors, aliases, tags,
	// multi-line or escaped weight scalars), rather than risk changing other bytes.
	ErrUnsupported = errors.New("unsupported yaml")
)

// VSRef names the route whose stable and canary weights canaryd manages: an http route of a
// VirtualService (Kind empty or "VirtualService"), or a rule of a GRPCRoute or HTTPRoute.
type VSRef struct {
	// Kind is the object's kind; empty means VirtualService.
	Kind string
	// Namespace and Name of the object. A document without metadata.namespace matches any
	// namespace (kubectl -n decides), unless another matches it exactly.
	Namespace string
	Name      string
	// Route is the http route's name (for a Gateway API route, the rule's name or index);
	// empty means the only route whose destinations hold both backends.
	Route string
	// Host, when set, restricts a VirtualService's destinations to this host (short and
	// FQDN forms alike, resolved in the object's namespace).
	Host string
	// Stable and Canary are subsets of Host, or for a Gateway API route Service names.
	Stable string
	Canary string
	// Port, when set, is the port a Gateway API route's backendRefs must name.
	Port int
}

// RefOf returns the route a rollout document manages.
func RefOf(doc *rollout.Document) VSRef {
	t := doc.Spec.Target()
	return VSRef{Kind: t.Kind, Namespace: t.Namespace, Name: t.Name, Route: t.Route,
		Host: t.Host, Stable: t.Stable, Canary: t.Canary, Port: t.Port}
}

// target is ref as the domain's route rule takes it.
func (r VSRef) target() rollout.Target {
	kind := r.Kind
	if kind == "" {
		kind = rollout.KindVirtualService
	}
	return rollout.Target{Kind: kind, Namespace: r.Namespace, Name: r.Name, Route: r.Route,
		Host: r.Host, Stable: r.Stable, Canary: r.Canary, Port: r.Port}
}

func (r VSRef) String() string { return r.target().String() }

// ReadWeights returns the stable and canary weights of ref's route in the manifest data. A
// destination without a weight counts as its kind defaults it: 0 for a VirtualService's,
// 1 for a Gateway API backendRef. It fails, wrapping one of the package's
// sentinel errors, when the manifest does not parse, the route cannot be found unambiguously,
// or the route's weights do not put all traffic on the two subsets.
func ReadWeights(data []byte, ref VSRef) (rollout.Weights, error) {
	loc, err := locate(data, ref)
	if err != nil {
		return rollout.Weights{}, err
	}
	w, err := loc.weights()
	if err != nil {
		return rollout.Weights{}, err
	}
	if !w.Valid() || loc.others != 0 {
		return w, fmt.Errorf("%s: %s=%d, %s=%d, others %d: %w",
			ref, ref.Stable, w.Stable, ref.Canary, w.Canary, loc.others, ErrWeights)
	}
	return w, nil
}

// SetWeights returns data with the weights of ref's route set to w. Only the two weight
// values change; every other byte stays as it was. A destination without a weight gets a
// `weight:` line inserted at its indentation (or `weight: N, ` in a flow mapping). When the
// manifest already holds w, data is returned unchanged. It refuses, returning an error that
// wraps one of the package's sentinel errors and no data, when w does not sum to 100, the
// manifest does not parse, the object, the route or a backend is missing or
// ambiguous, another destination of the route holds weight, or the YAML is of a shape the
// editor cannot change without touching other bytes.
func SetWeights(data []byte, ref VSRef, w rollout.Weights) ([]byte, error) {
	if !w.Valid() {
		return nil, fmt.Errorf("set %s to %s: %w", ref, w, ErrWeights)
	}
	loc, err := locate(data, ref)
	if err != nil {
		return nil, err
	}
	if loc.others != 0 {
		return nil, fmt.Errorf("%s: other destinations hold weight %d: %w", ref, loc.others, ErrWeights)
	}
	if cur, err := loc.weights(); err != nil {
		return nil, err
	} else if cur == w {
		return data, nil
	}
	src := newSource(data)
	var edits []edit
	for _, d := range []struct {
		dest *destination
		val  int
	}{{loc.stable, w.Stable}, {loc.canary, w.Canary}} {
		e, err := src.weightEdit(d.dest, d.val)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		edits = append(edits, e)
	}
	out := applyEdits(data, edits)
	if err := verifyEdit(data, out, ref, w, loc); err != nil {
		return nil, fmt.Errorf("%s: edit self-check: %w", ref, err)
	}
	return out, nil
}

// parseDocs parses every YAML document of data.
func parseDocs(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrParse, err)
		}
		docs = append(docs, &n)
	}
}

// scalarAt returns the scalar value at the path of keys below m, or "".
func scalarAt(m *yaml.Node, keys ...string) string {
	for _, k := range keys {
		v, err := field(m, k)
		if err != nil || v == nil {
			return ""
		}
		m = v
	}
	if m.Kind != yaml.ScalarNode {
		return ""
	}
	return m.Value
}

// field returns the value of key in mapping m (nil when missing or m is no mapping). It
// refuses duplicate keys, merge keys and aliases rather than guess which one counts.
func field(m *yaml.Node, key string) (*yaml.Node, error) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	var found *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag == "!!merge" {
			return nil, fmt.Errorf("merge key at line %d: %w", k.Line, ErrUnsupported)
		}
		if k.Kind != yaml.ScalarNode || k.Value != key {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("key %q repeated at line %d: %w", key, k.Line, ErrAmbiguous)
		}
		if v.Kind == yaml.AliasNode {
			return nil, fmt.Errorf("alias for %q at line %d: %w", key, v.Line, ErrUnsupported)
		}
		found = v
	}
	return found, nil
}

// edit replaces n bytes at off with text.
type edit struct {
	off, n int
	text   string
}

func applyEdits(data []byte, edits []edit) []byte {
	slices.SortFunc(edits, func(a, b edit) int { return a.off - b.off })
	var out bytes.Buffer
	grow := 0
	for _, e := range edits {
		grow += max(0, len(e.text)-e.n)
	}
	out.Grow(len(data) + grow)
	last := 0
	for _, e := range edits {
		out.Write(data[last:e.off])
		out.WriteString(e.text)
		last = e.off + e.n
	}
	out.Write(data[last:])
	return out.Bytes()
}

// source maps yaml.v3's line and column marks back to byte offsets.
type source struct {
	data  []byte
	lines []int // byte offset where each line starts, counting breaks as yaml.v3 does
	bom   int
}

func newSource(data []byte) *source {
	s := &source{data: data, lines: []int{0}}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		s.bom = 3
		s.lines[0] = 3
	}
	for i := s.bom; i < len(data); {
		switch {
		case data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n':
			i += 2
		case data[i] == '\r' || data[i] == '\n':
			i++
		case bytes.HasPrefix(data[i:], []byte("\u0085")):
			i += 2
		case bytes.HasPrefix(data[i:], []byte("\u2028")), bytes.HasPrefix(data[i:], []byte("\u2029")):
			i += 3
		default:
			i++
			continue
		}
		s.lines = append(s.lines, i)
	}
	return s
}

// offset returns the byte offset of yaml's (line, column), both 1-based, column in runes.
func (s *source) offset(line, col int) (int, bool) {
	if line < 1 || line > len(s.lines) {
		return 0, false
	}
	off := s.lines[line-1]
	for range col - 1 {
		if off >= len(s.data) {
			return 0, false
		}
		_, size := utf8.DecodeRune(s.data[off:])
		off += size
	}
	return off, true
}

// lineEnd returns where the line ends (before its break) and the break itself.
func (s *source) lineEnd(line int) (int, string) {
	end := len(s.data)
	if line < len(s.lines) {
		end = s.lines[line]
	}
	start := s.lines[line-1]
	brk := ""
	for _, b := range []string{"\r\n", "\n", "\r", "\u0085", "\u2028", "\u2029"} {
		if end-len(b) >= start && string(s.data[end-len(b):end]) == b {
			brk = b
			break
		}
	}
	return end - len(brk), brk
}

// weightEdit returns the edit that sets d's weight to v.
func (s *source) weightEdit(d *destination, v int) (edit, error) {
	if d.weight != nil {
		return s.replaceScalar(d.weight, strconv.Itoa(v))
	}
	if d.item.Style&yaml.FlowStyle != 0 {
		off, ok := s.offset(d.key.Line, d.key.Column)
		if !ok {
			return edit{}, fmt.Errorf("destination at line %d: position out of range: %w", d.key.Line, ErrUnsupported)
		}
		return edit{off: off, text: "weight: " + strconv.Itoa(v) + ", "}, nil
	}
	last := lastLine(d.value)
	if last < 0 {
		return edit{}, fmt.Errorf("destination at line %d spans multi-line scalars: %w", d.key.Line, ErrUnsupported)
	}
	last = max(last, d.key.Line)
	end, brk := s.lineEnd(last)
	indent := strings.Repeat(" ", d.key.Column-1)
	line := indent + "weight: " + strconv.Itoa(v)
	if brk == "" { // the last line of the file has no break
		return edit{off: end, text: s.breakOf(d.key.Line) + line}, nil
	}
	return edit{off: end + len(brk), text: line + brk}, nil
}

// breakOf returns the line break used at the end of line, "\n" when it has none.
func (s *source) breakOf(line int) string {
	if _, brk := s.lineEnd(line); brk != "" {
		return brk
	}
	return "\n"
}

// replaceScalar replaces a weight scalar's value, keeping its quoting.
func (s *source) replaceScalar(n *yaml.Node, val string) (edit, error) {
	if n.Kind != yaml.ScalarNode || n.Anchor != "" || n.Style&(yaml.TaggedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return edit{}, fmt.Errorf("weight at line %d is anchored, tagged or a block scalar: %w", n.Line, ErrUnsupported)
	}
	off, ok := s.offset(n.Line, n.Column)
	if !ok {
		return edit{}, fmt.Errorf("weight at line %d: position out of range: %w", n.Line, ErrUnsupported)
	}
	raw, text := n.Value, val
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		raw, text = `"`+raw+`"`, `"`+val+`"`
	case n.Style&yaml.SingleQuotedStyle != 0:
		raw, text = "'"+raw+"'", "'"+val+"'"
	}
	if !bytes.HasPrefix(s.data[off:], []byte(raw)) {
		return edit{}, fmt.Errorf("weight at line %d is not written as %s: %w", n.Line, raw, ErrUnsupported)
	}
	return edit{off: off, n: len(raw), text: text}, nil
}

// lastLine returns the last line any node below n starts on, or -1 when a scalar below n
// may span several lines (block or multi-line scalars), where a line cannot be inserted
// safely after it.
func lastLine(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	if n.Kind == yaml.ScalarNode && (n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || strings.ContainsAny(n.Value, "\n\r")) {
		return -1
	}
	last := n.Line
	for _, c := range n.Content {
		l := lastLine(c)
		if l < 0 {
			return -1
		}
		last = max(last, l)
	}
	return last
}

// verifyEdit checks that out parses, holds w at ref, and that every document decodes to
// the same values as in data, apart from the two weights.
func verifyEdit(data, out []byte, ref VSRef, w rollout.Weights, loc *location) error {
	got, err := ReadWeights(out, ref)
	if err != nil {
		return err
	}
	if got != w {
		return fmt.Errorf("wrote %s, read back %s: %w", w, got, ErrUnsupported)
	}
	before, err := decodeAll(data)
	if err != nil {
		return err
	}
	after, err := decodeAll(out)
	if err != nil {
		return err
	}
	if len(before) != len(after) {
		return fmt.Errorf("%d documents became %d: %w", len(before), len(after), ErrUnsupported)
	}
	for _, docs := range [][]any{before, after} {
		for _, i := range []int{loc.stable.index, loc.canary.index} {
			if !dropWeight(docs[loc.doc], loc.shape, loc.route, i) {
				return fmt.Errorf("route %d destination %d not found after edit: %w", loc.route, i, ErrUnsupported)
			}
		}
	}
	if !reflect.DeepEqual(before, after) {
		return fmt.Errorf("the edit changed more than the weights: %w", ErrUnsupported)
	}
	return nil
}

// decodeAll decodes every document of data into plain Go values.
func decodeAll(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrParse, err)
		}
		docs = append(docs, v)
	}
}

// decodeNodes decodes parsed documents as decodeAll decodes their text.
func decodeNodes(docs []*yaml.Node) ([]any, error) {
	out := make([]any, 0, len(docs))
	for _, n := range docs {
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrParse, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// dropWeight deletes spec.http[route].route[dest].weight (or the kind's equivalent) from a
// decoded document.
func dropWeight(doc any, sh shape, route, dest int) bool {
	v := lookup(doc, "spec", sh.routes)
	rs, ok := v.([]any)
	if !ok || route >= len(rs) {
		return false
	}
	ds, ok := lookup(rs[route], sh.dests).([]any)
	if !ok || dest >= len(ds) {
		return false
	}
	switch m := ds[dest].(type) {
	case map[string]any:
		delete(m, "weight")
	case map[any]any:
		delete(m, "weight")
	default:
		return false
	}
	return true
}

// lookup follows string keys through decoded mappings.
func lookup(v any, keys ...string) any {
	for _, k := range keys {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case map[any]any:
			v = m[k]
		default:
			return nil
		}
	}
	return v
}
