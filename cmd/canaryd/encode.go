package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/canarydio/canaryd/server"
)

// durationKeys are the JSON keys whose values the API sends as integer nanoseconds; -o json
// and -o yaml print them as Go durations ("1.2ms").
var durationKeys = map[string]bool{"latency": true}

// encode writes v as indented JSON or as YAML. Both keep the API's field order (the order
// of the Go structs, not alphabetical) and print durations as strings.
func encode(w io.Writer, output string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := readNode(dec, "")
	if err != nil {
		return fmt.Errorf("re-encode the answer: %w", err)
	}
	if output == "json" {
		var b strings.Builder
		writeJSON(&b, n, "")
		b.WriteString("\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return err
	}
	return enc.Close()
}

// readNode reads one JSON value as a YAML node, keeping the order of object keys. key is
// the object key the value belongs to, for durationKeys.
func readNode(dec *json.Decoder, key string) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	scalar := func(tag, v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v} }
	switch t := tok.(type) {
	case json.Delim:
		kind, end := yaml.MappingNode, json.Delim('}')
		if t == '[' {
			kind, end = yaml.SequenceNode, ']'
		}
		n := &yaml.Node{Kind: kind}
		for dec.More() {
			childKey := key
			if kind == yaml.MappingNode {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				childKey = k.(string)
				n.Content = append(n.Content, scalar("!!str", childKey))
			}
			child, err := readNode(dec, childKey)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, child)
		}
		if tok, err := dec.Token(); err != nil || tok != end {
			return nil, fmt.Errorf("unbalanced JSON at %v", tok)
		}
		return n, nil
	case string:
		return scalar("!!str", t), nil
	case json.Number:
		if durationKeys[key] {
			if ns, err := strconv.ParseInt(t.String(), 10, 64); err == nil {
				return scalar("!!str", time.Duration(ns).String()), nil
			}
		}
		if strings.ContainsAny(t.String(), ".eE") {
			return scalar("!!float", t.String()), nil
		}
		return scalar("!!int", t.String()), nil
	case bool:
		return scalar("!!bool", strconv.FormatBool(t)), nil
	}
	return scalar("!!null", "null"), nil
}

// writeJSON writes n as JSON indented by two spaces.
func writeJSON(b *strings.Builder, n *yaml.Node, indent string) {
	inner := indent + "  "
	switch n.Kind {
	case yaml.MappingNode, yaml.SequenceNode:
		open, closing, step := "{", "}", 2
		if n.Kind == yaml.SequenceNode {
			open, closing, step = "[", "]", 1
		}
		if len(n.Content) == 0 {
			b.WriteString(open + closing)
			return
		}
		b.WriteString(open + "\n")
		for i := 0; i < len(n.Content); i += step {
			b.WriteString(inner)
			if step == 2 {
				writeJSON(b, n.Content[i], inner)
				b.WriteString(": ")
			}
			writeJSON(b, n.Content[i+step-1], inner)
			if i+step < len(n.Content) {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString(indent + closing)
	default:
		if n.Tag == "!!str" {
			q, _ := json.Marshal(n.Value)
			b.Write(q)
			return
		}
		b.WriteString(n.Value)
	}
}

// historyView is a history page as the CLI prints it: steps counted from 1, as status and
// the commit trailers count them (0: before the first step).
func historyView(page server.HistoryPage) server.HistoryPage {
	out := page
	out.Events = append(out.Events[:0:0], page.Events...)
	for i := range out.Events {
		out.Events[i].Step = max(out.Events[i].Step+1, 0)
	}
	return out
}
