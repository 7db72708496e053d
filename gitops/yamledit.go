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
	// ErrNotFound reports that no document of the manifest is the VirtualService.
	ErrNotFound = errors.New("virtualservice not found")
	// ErrNoRoute reports that no http route matches (by name, or by holding both subsets).
	ErrNoRoute = errors.New("route not found")
	// ErrAmbiguous reports that the route, a subset or the VirtualService matches more than once.
	ErrAmbiguous = errors.New("ambiguous")
	// ErrSubset reports that the route lacks the stable or the canary subset.
	ErrSubset = errors.New("subset missing")
	// ErrWeights reports weights that are not whole numbers summing to 100.
	ErrWeights = errors.New("weights do not sum to 100")
	// ErrUnsupported reports YAML the editor refuses to touch (anchors, aliases, tags,
	// multi-line or escaped weight scalars), rather than risk changing other bytes.
	ErrUnsupported = errors.New("unsupported yaml")
)

// VSRef names the http route of a VirtualService whose stable and canary weights canaryd
// manages.
type VSRef struct {
	// Namespace and Name of the VirtualService. A document without metadata.namespace
	// matches any namespace (kubectl -n decides), unless another matches it exactly.
	Namespace string
	Name      string
	// Route is the http route's name; empty means the only http route whose destinations
	// hold both subsets.
	Route string
	// Host, when set, restricts destinations to this host (or its FQDN forms).
	Host   string
	Stable string
	Canary string
}

// RefOf returns the route a rollout document manages.
func RefOf(doc *rollout.Document) VSRef {
	s := &doc.Spec
	return VSRef{
		Namespace: s.VirtualService.Namespace, Name: s.VirtualService.Name,
		Route: s.Route.HTTP, Host: s.Host, Stable: s.Stable, Canary: s.Canary,
	}
}

func (r VSRef) String() string {
	s := "virtualservice " + r.Namespace + "/" + r.Name
	if r.Route != "" {
		s += " route " + strconv.Quote(r.Route)
	}
	return s
}

// ReadWeights returns the stable and canary weights of ref's route in the manifest data. A
// destination without a weight counts as 0. It fails, wrapping one of the package's
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
// manifest does not parse, the VirtualService, the route or a subset is missing or
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

// location is where ref's route is in a manifest.
type location struct {
	doc, route     int // indexes of the document and of the http route
	stable, canary *destination
	others         int // the sum of the weights of the route's other destinations
}

// destination is one entry of a route's destination list.
type destination struct {
	index  int
	item   *yaml.Node // the mapping holding destination: and weight:
	key    *yaml.Node // the "destination" key
	value  *yaml.Node // the destination mapping
	weight *yaml.Node // the weight value; nil when missing
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

// weightOf returns a destination's weight: a whole number 0..100, 0 when missing.
func weightOf(d *destination) (int, error) {
	if d.weight == nil {
		return 0, nil
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

// locate finds ref's route in data.
func locate(data []byte, ref VSRef) (*location, error) {
	docs, err := parseDocs(data)
	if err != nil {
		return nil, err
	}
	di, vs, err := findVS(docs, ref)
	if err != nil {
		return nil, err
	}
	spec, err := field(vs, "spec")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	var http *yaml.Node
	if spec != nil {
		if http, err = field(spec, "http"); err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
	}
	if http == nil || http.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s has no http routes: %w", ref, ErrNoRoute)
	}
	loc, err := findRoute(http, ref)
	if err != nil {
		return nil, err
	}
	loc.doc = di
	return loc, nil
}

// findVS returns the index and the top mapping of ref's VirtualService among docs.
func findVS(docs []*yaml.Node, ref VSRef) (int, *yaml.Node, error) {
	exact, loose := -1, -1
	var exactN, looseN int
	for i, d := range docs {
		if d.Kind != yaml.DocumentNode || len(d.Content) != 1 || d.Content[0].Kind != yaml.MappingNode {
			continue
		}
		top := d.Content[0]
		if scalarAt(top, "kind") != "VirtualService" || scalarAt(top, "metadata", "name") != ref.Name {
			continue
		}
		switch scalarAt(top, "metadata", "namespace") {
		case ref.Namespace:
			exact, exactN = i, exactN+1
		case "":
			loose, looseN = i, looseN+1
		}
	}
	switch {
	case exactN == 1:
		return exact, docs[exact].Content[0], nil
	case exactN > 1:
		return 0, nil, fmt.Errorf("%s is defined %d times: %w", ref, exactN, ErrAmbiguous)
	case looseN == 1:
		return loose, docs[loose].Content[0], nil
	case looseN > 1:
		return 0, nil, fmt.Errorf("%s (no namespace) is defined %d times: %w", ref, looseN, ErrAmbiguous)
	}
	return 0, nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
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

// routeMatch is one http route that holds the subsets.
type routeMatch struct {
	index          int
	stable, canary []*destination
	others         int
}

// findRoute picks ref's route among the http routes.
func findRoute(http *yaml.Node, ref VSRef) (*location, error) {
	var named, holding []*routeMatch
	for i, r := range http.Content {
		if r.Kind == yaml.AliasNode {
			return nil, fmt.Errorf("%s: alias http route at line %d: %w", ref, r.Line, ErrUnsupported)
		}
		if ref.Route != "" && scalarAt(r, "name") != ref.Route {
			continue
		}
		m, err := matchRoute(r, ref)
		if err != nil {
			return nil, fmt.Errorf("%s: http route %d: %w", ref, i, err)
		}
		m.index = i
		named = append(named, m)
		if len(m.stable) > 0 && len(m.canary) > 0 {
			holding = append(holding, m)
		}
	}
	var m *routeMatch
	switch {
	case ref.Route != "" && len(named) == 0:
		return nil, fmt.Errorf("%s: no http route named %q: %w", ref, ref.Route, ErrNoRoute)
	case ref.Route != "" && len(named) > 1:
		return nil, fmt.Errorf("%s: %d http routes are named %q: %w", ref, len(named), ref.Route, ErrAmbiguous)
	case ref.Route != "":
		m = named[0]
	case len(holding) == 0:
		return nil, fmt.Errorf("%s: no http route holds subsets %q and %q: %w", ref, ref.Stable, ref.Canary, ErrNoRoute)
	case len(holding) > 1:
		return nil, fmt.Errorf("%s: %d http routes hold subsets %q and %q; name one with route: %w",
			ref, len(holding), ref.Stable, ref.Canary, ErrAmbiguous)
	default:
		m = holding[0]
	}
	for _, c := range []struct {
		subset string
		ds     []*destination
	}{{ref.Stable, m.stable}, {ref.Canary, m.canary}} {
		if len(c.ds) == 0 {
			return nil, fmt.Errorf("%s: http route %d has no destination with subset %q: %w", ref, m.index, c.subset, ErrSubset)
		}
		if len(c.ds) > 1 {
			return nil, fmt.Errorf("%s: http route %d has %d destinations with subset %q: %w",
				ref, m.index, len(c.ds), c.subset, ErrAmbiguous)
		}
	}
	return &location{route: m.index, stable: m.stable[0], canary: m.canary[0], others: m.others}, nil
}

// matchRoute sorts the destinations of one http route by subset.
func matchRoute(r *yaml.Node, ref VSRef) (*routeMatch, error) {
	m := &routeMatch{}
	dests, err := field(r, "route")
	if err != nil || dests == nil || dests.Kind != yaml.SequenceNode {
		return m, err
	}
	for j, item := range dests.Content {
		if item.Kind == yaml.AliasNode {
			return nil, fmt.Errorf("alias destination at line %d: %w", item.Line, ErrUnsupported)
		}
		d, err := readDestination(item, j)
		if err != nil {
			return nil, err
		}
		if d == nil {
			continue
		}
		subset, host := scalarAt(d.value, "subset"), scalarAt(d.value, "host")
		switch {
		case hostMatches(host, ref.Host) && subset == ref.Stable:
			m.stable = append(m.stable, d)
		case hostMatches(host, ref.Host) && subset == ref.Canary:
			m.canary = append(m.canary, d)
		default:
			w, err := weightOf(d)
			if err != nil {
				return nil, err
			}
			m.others += w
		}
	}
	return m, nil
}

// readDestination reads one entry of a route's destination list; nil when it has none.
func readDestination(item *yaml.Node, index int) (*destination, error) {
	if item.Kind != yaml.MappingNode {
		return nil, nil
	}
	d := &destination{index: index, item: item}
	for i := 0; i+1 < len(item.Content); i += 2 {
		k := item.Content[i]
		if k.Kind == yaml.ScalarNode && k.Value == "destination" {
			d.key = k
		}
	}
	if d.key == nil {
		return nil, nil
	}
	var err error
	if d.value, err = field(item, "destination"); err != nil {
		return nil, err
	}
	if d.weight, err = field(item, "weight"); err != nil {
		return nil, err
	}
	return d, nil
}

// hostMatches reports whether a destination host is the wanted one ("" wants any): equal,
// or an FQDN form of it ("grpc-helloworld-py.default.svc.cluster.local").
func hostMatches(host, want string) bool {
	return want == "" || host == want || strings.HasPrefix(host, want+".") || strings.HasPrefix(want, host+".")
}

// edit replaces n bytes at off with text.
type edit struct {
	off, n int
	text   string
}

func applyEdits(data []byte, edits []edit) []byte {
	slices.SortFunc(edits, func(a, b edit) int { return a.off - b.off })
	var out bytes.Buffer
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
			if !dropWeight(docs[loc.doc], loc.route, i) {
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

// dropWeight deletes spec.http[route].route[dest].weight from a decoded document.
func dropWeight(doc any, route, dest int) bool {
	v := lookup(doc, "spec", "http")
	rs, ok := v.([]any)
	if !ok || route >= len(rs) {
		return false
	}
	ds, ok := lookup(rs[route], "route").([]any)
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
