package rollout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// pos is a 1-based line and column in a file.
type pos struct{ line, col int }

func posOf(n *yaml.Node) pos { return pos{n.Line, n.Column} }

// decoder turns one YAML document into a Go value, reporting every unknown field, wrong
// type and bad scalar with its position, and remembering where each field was written so that
// validation can point at it.
type decoder struct {
	file     string
	problems Problems
	index    problemIndex
	at       map[string]pos // field path → position of its value
	nodes    int            // nodes decoded so far, aliases expanded, against MaxNodes
}

func (d *decoder) errorf(p pos, field, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: p.line, Col: p.col, Field: field, Msg: fmt.Sprintf(format, args...)})
	d.index.add(field)
}

// where returns the position recorded for path, or for its nearest recorded parent.
func (d *decoder) where(path string) pos {
	for {
		if p, ok := d.at[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return d.at[""]
		}
		path = path[:i]
	}
}

var (
	durationType  = reflect.TypeOf(Duration{})
	thresholdType = reflect.TypeOf(Threshold{})
	routeRefType  = reflect.TypeOf(RouteRef{})
)

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if d.nodes++; d.nodes > MaxNodes {
		if d.nodes == MaxNodes+1 {
			d.errorf(posOf(n), path, "the document expands to more than %d YAML nodes (aliases?); it is not read further", MaxNodes)
		}
		return
	}
	d.at[path] = posOf(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value; validation reports what is required
	}
	switch {
	case v.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(path, n, v.Elem())
	case v.Type() == durationType:
		d.decodeDuration(path, n, v)
	case v.Type() == thresholdType:
		d.decodeThreshold(path, n, v)
	case v.Type() == routeRefType && n.Kind == yaml.ScalarNode:
		v.Set(reflect.ValueOf(RouteRef{HTTP: n.Value})) // the VirtualService's http route name
	case v.Kind() == reflect.Struct:
		d.decodeStruct(path, n, v)
	case v.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(posOf(n), path, "must be a list")
			return
		}
		if limit, what := listLimit(path); len(n.Content) > limit {
			d.errorf(posOf(n), path, "holds %d items; at most %d %s", len(n.Content), limit, what)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i))
		}
		v.Set(s)
	default:
		d.decodeScalar(path, n, v)
	}
}

func (d *decoder) scalar(path string, n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(posOf(n), path, "must be %s", what)
		return "", false
	}
	return n.Value, true
}

func (d *decoder) decodeScalar(path string, n *yaml.Node, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if s, ok := d.scalar(path, n, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Int:
		s, ok := d.scalar(path, n, "an integer")
		if !ok {
			return
		}
		i, err := strconv.Atoi(s)
		if err != nil || n.Tag != "!!int" {
			d.errorf(posOf(n), path, "must be an integer, not %q", s)
			return
		}
		v.SetInt(int64(i))
	case reflect.Float64, reflect.Float32:
		s, ok := d.scalar(path, n, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil || (n.Tag != "!!int" && n.Tag != "!!float") {
			d.errorf(posOf(n), path, "must be a number, not %q", s)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		s, ok := d.scalar(path, n, "true or false")
		if !ok {
			return
		}
		b, err := strconv.ParseBool(s)
		if err != nil || n.Tag != "!!bool" {
			d.errorf(posOf(n), path, "must be true or false, not %q", s)
			return
		}
		v.SetBool(b)
	default:
		panic("rollout: no decoder for " + v.Type().String())
	}
}

func (d *decoder) decodeDuration(path string, n *yaml.Node, v reflect.Value) {
	s, ok := d.scalar(path, n, "a duration such as 30s or 5m")
	if !ok {
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(posOf(n), path, "%q is not a duration (write it like 30s, 5m or 1h30m)", s)
		return
	}
	if dur < 0 || dur == 0 && !strings.HasSuffix(path, ".postPromotionBake") { // 0s: no watch at 100 %
		d.errorf(posOf(n), path, "must be positive, not %s", s)
		return
	}
	v.Set(reflect.ValueOf(Duration{Duration: dur, Set: true}))
}

func (d *decoder) decodeThreshold(path string, n *yaml.Node, v reflect.Value) {
	s, ok := d.scalar(path, n, "a number or a duration")
	if !ok {
		return
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && (n.Tag == "!!int" || n.Tag == "!!float") {
		v.Set(reflect.ValueOf(Threshold{Value: f, Text: s}))
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(posOf(n), path, "%q is neither a number nor a duration", s)
		return
	}
	v.Set(reflect.ValueOf(Threshold{Dur: dur, Text: s}))
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(posOf(n), path, "must be a mapping")
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		name := key.Value
		fp := join(path, name)
		if key.Tag == "!!merge" {
			d.errorf(posOf(key), path, "merge keys (<<) are not supported")
			continue
		}
		idx, ok := fields[name]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", name)
			if s := suggest(name, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(posOf(key), fp, "%s", msg)
			continue
		}
		if seen[name] {
			d.errorf(posOf(key), fp, "set twice")
			continue
		}
		seen[name] = true
		d.decode(fp, val, v.Field(idx))
	}
}

// yamlFields maps the YAML names of t's fields to their indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			m[tag] = i
		}
	}
	return m
}

// suggest returns the known field closest to a misspelt one, or "".
func suggest(name string, fields map[string]int) string {
	best, bestDist := "", 3
	for f := range fields {
		if dist := editDistance(strings.ToLower(name), strings.ToLower(f)); dist < bestDist || (dist == bestDist && f < best) {
			best, bestDist = f, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			// a transposition ("stpes") costs one edit
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// parserErrors are the problems the YAML parser (not its scanner) reports. The parser gives
// their line 0-based, one line too early (the line where the collection it was reading
// opened, counted from 0); scanner errors are 1-based.
var parserErrors = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"found undefined tag handle",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// syntaxProblem turns a YAML parser error into a Problem.
func syntaxProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimPrefix(strings.Replace(msg, m[0], "", 1), ": ")
		if slices.Contains(parserErrors, msg) {
			line++
		}
	}
	return Problem{File: file, Line: line, Col: 1, Msg: "YAML: " + msg}
}

// Parse reads every Rollout document of a file, applies defaults and validates each.
//
// It returns the documents it could decode (an invalid one too, so that its name can be
// shown as Invalid) and, when anything is wrong, a Problems error listing every problem of
// every document, each with its file, line and column.
func Parse(file string, data []byte) ([]*Document, error) {
	if why := tooLarge(len(data)); why != "" {
		return nil, Problems{{File: file, Line: 1, Col: 1, Msg: why}}
	}
	var (
		docs     []*Document
		problems Problems
	)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for index := 0; ; index++ {
		if index == MaxDocuments {
			problems = append(problems, Problem{File: file, Line: 1, Col: 1,
				Msg: fmt.Sprintf("more than %d YAML documents; the rest are not read", MaxDocuments)})
			break
		}
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			problems = append(problems, syntaxProblem(file, err))
			break
		}
		if len(root.Content) == 0 {
			continue // an empty document, such as a trailing "---"
		}
		doc, ps := decodeDocument(file, index, &root)
		docs = append(docs, doc)
		problems = append(problems, ps...)
	}
	if len(docs) == 0 && len(problems) == 0 {
		problems = append(problems, Problem{File: file, Line: 1, Col: 1, Msg: "no Rollout document"})
	}
	problems = append(problems, duplicateNames(docs)...)
	problems.sort()
	return docs, problems.Err()
}

func decodeDocument(file string, index int, root *yaml.Node) (*Document, Problems) {
	d := &decoder{file: file, at: map[string]pos{}}
	doc := &Document{File: file, Index: index}
	d.decode("", root.Content[0], reflect.ValueOf(doc).Elem())
	applyDefaults(doc)
	validate(d, doc)
	doc.positions = d.at
	d.problems.sort()
	doc.Problems = d.problems
	return doc, d.problems
}

func duplicateNames(docs []*Document) Problems {
	var ps Problems
	first := map[string]*Document{}
	for _, doc := range docs {
		name := doc.Name()
		if name == "" {
			continue
		}
		if prev, ok := first[name]; ok {
			p := doc.posAt("metadata.name")
			dup := Problem{File: doc.File, Line: p.line, Col: p.col, Field: "metadata.name",
				Msg: fmt.Sprintf("rollout %q is already defined in document %d", name, prev.Index+1)}
			doc.Problems = append(doc.Problems, dup)
			ps = append(ps, dup)
			continue
		}
		first[name] = doc
	}
	return ps
}

func applyDefaults(doc *Document) {
	s := &doc.Spec
	if a := s.Analysis; a != nil {
		if !a.Interval.Set {
			a.Interval = Duration{Duration: DefaultInterval}
		}
		if a.FailureLimit == 0 {
			a.FailureLimit = DefaultFailureLimit
		}
		for i := range a.Metrics {
			m := &a.Metrics[i]
			if !m.Window.Set {
				m.Window = Duration{Duration: DefaultWindow}
			}
			if m.OnNoData == "" {
				m.OnNoData = OnNoDataHold
			}
		}
	}
	if s.OnProgressDeadline == "" {
		s.OnProgressDeadline = OnProgressDeadlineHold
	}
	if p := s.Probe; p != nil {
		if p.Count == 0 {
			p.Count = DefaultProbeCount
		}
		if p.MinSuccess == nil {
			one := 1.0
			p.MinSuccess = &one
		}
		if !p.Timeout.Set {
			p.Timeout = Duration{Duration: DefaultProbeTimeout}
		}
	}
}

// DecodeYAML decodes a single YAML document into v (a pointer to a struct with yaml tags)
// as strictly as specs are decoded: every unknown field, wrong type and bad duration is a
// Problem with its position. canaryd's own configuration is read with it.
func DecodeYAML(file string, data []byte, v any) error {
	if why := tooLarge(len(data)); why != "" {
		return Problems{{File: file, Line: 1, Col: 1, Msg: why}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Problems{syntaxProblem(file, err)}
	}
	if len(root.Content) == 0 {
		return Problems{{File: file, Line: 1, Col: 1, Msg: "empty document"}}
	}
	d := &decoder{file: file, at: map[string]pos{}}
	d.decode("", root.Content[0], reflect.ValueOf(v).Elem())
	return d.problems.Err()
}
