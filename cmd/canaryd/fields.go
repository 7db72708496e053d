package main

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/canarydio/canaryd/rollout"
)

// field is one YAML key of a spec or config, found by walking the Go structs' yaml tags.
type field struct {
	// Path is the key's place, such as "spec.analysis.metrics[].min".
	Path string
	Type reflect.Type
}

var (
	durationType  = reflect.TypeOf(rollout.Duration{})
	thresholdType = reflect.TypeOf(rollout.Threshold{})
	routeRefType  = reflect.TypeOf(rollout.RouteRef{}) // a string, or an object
)

// fieldsOf lists every YAML key of t (a struct type) in declaration order, parents before
// their children. Duration and Threshold are leaves; so is any struct without yaml tags.
func fieldsOf(t reflect.Type) []field {
	var out []field
	walkFields(t, "", &out)
	return out
}

func walkFields(t reflect.Type, prefix string, out *[]field) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		path := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		*out = append(*out, field{Path: path, Type: f.Type})
		switch {
		case ft.Kind() == reflect.Slice && isRecord(ft.Elem()):
			walkFields(ft.Elem(), path+"[].", out)
		case isRecord(ft):
			walkFields(ft, path+".", out)
		}
	}
}

// isRecord reports whether t is a struct decoded key by key (one with yaml tags).
func isRecord(t reflect.Type) bool {
	if t.Kind() != reflect.Struct || t == durationType || t == thresholdType {
		return false
	}
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" && tag != "-" {
			return true
		}
	}
	return false
}

// typeName is how the reference names a field's type.
func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return "duration"
	case t == thresholdType:
		return "number or duration"
	case t == routeRefType:
		return "string or object"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case isRecord(t):
		return "object"
	case t.Kind() == reflect.Int:
		return "integer"
	case t.Kind() == reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}

// referenceTable renders fields with their docs as a Markdown table, the generated part of
// docs/spec.md and docs/config.md. A field without a doc is an error.
func referenceTable(fields []field, docs map[string]string) (string, error) {
	var b strings.Builder
	b.WriteString("| key | type | meaning |\n|---|---|---|\n")
	var missing []string
	for _, f := range fields {
		d, ok := docs[f.Path]
		if !ok || d == "" {
			missing = append(missing, f.Path)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.Path, typeName(f.Type), strings.ReplaceAll(d, "|", `\|`))
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("no documentation for %s", strings.Join(missing, ", "))
	}
	return b.String(), nil
}
