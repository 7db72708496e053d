package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/spf13/cobra"

	"github.com/canarydio/canaryd/rollout"
)

// SchemaID names the schema canaryd schema prints.
const SchemaID = "https://canaryd.io/schemas/rollout-v1alpha1.json"

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of a Rollout spec, for editors",
		Long: "schema prints a JSON Schema (draft-07) of a Rollout document: every field with its\n" +
			"meaning, type and bounds. Save it and point yaml-language-server at it, for example\n" +
			"with a first line in each spec:\n\n" +
			"  # yaml-language-server: $schema=./rollout.schema.json\n\n" +
			"canaryd validate still decides: it also checks what a schema cannot (cron, PromQL\n" +
			"templates, grpcurl command lines).",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			data, err := json.MarshalIndent(rolloutSchema(), "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.OutOrStdout(), "%s\n", data)
			return err
		},
	}
}

// schemaRequired lists the required keys of each object, by path ("" is the document).
var schemaRequired = map[string][]string{
	"":                    {"apiVersion", "kind", "metadata", "spec"},
	"metadata":            {"name"},
	"spec":                {"virtualService", "host", "stable", "canary", "manifest", "steps", "schedule"},
	"spec.virtualService": {"namespace", "name"},
	"spec.probe":          {"grpcurl"},
	"spec.analysis.metrics[].compareToStable": {"margin"},
}

// schemaExtra adds constraints to the schema of a path beyond its Go type.
var schemaExtra = map[string]map[string]any{
	"apiVersion":                          {"const": rollout.APIVersion},
	"kind":                                {"const": rollout.Kind},
	"spec.steps":                          {"minItems": 1, "items": map[string]any{"type": "integer", "minimum": 0, "maximum": 100}},
	"spec.analysis.failureLimit":          {"minimum": 1},
	"spec.analysis.metrics[].template":    {"enum": rollout.Templates},
	"spec.analysis.metrics[].onNoData":    {"enum": []string{rollout.OnNoDataHold, rollout.OnNoDataFail}},
	"spec.analysis.metrics[].minRequests": {"minimum": 0},
	"spec.probe.count":                    {"minimum": 1},
	"spec.probe.minSuccess":               {"minimum": 0, "maximum": 1},
	"spec.route.kind":                     {"enum": rollout.RouteKinds},
	"spec.onProgressDeadline":             {"enum": []string{rollout.OnProgressDeadlineHold, rollout.OnProgressDeadlineRollback}},
}

// durationSchema matches what Go's time.ParseDuration accepts, as specs write durations.
var durationSchema = map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$|^0$`}

// rolloutSchema is the JSON Schema of a Rollout document, built from rollout.Document's yaml
// tags and specDocs.
func rolloutSchema() map[string]any {
	s := typeSchema(reflect.TypeOf(rollout.Document{}), "")
	s["$schema"] = "http://json-schema.org/draft-07/schema#"
	s["$id"] = SchemaID
	s["title"] = "canaryd Rollout"
	// grpc-success-rate is a ratio: its bounds are numbers within 0..1.
	ratio := map[string]any{"type": "number", "minimum": 0, "maximum": 1,
		"description": "grpc-success-rate is a ratio within 0..1: 0.99, not 99."}
	metric := schemaAt(s, "spec", "analysis", "metrics").(map[string]any)["items"].(map[string]any)
	metric["if"] = map[string]any{"required": []string{"template"},
		"properties": map[string]any{"template": map[string]any{"const": rollout.TemplateSuccessRate}}}
	metric["then"] = map[string]any{"properties": map[string]any{"min": ratio, "max": ratio}}
	return s
}

func schemaAt(s map[string]any, keys ...string) any {
	var cur any = s
	for _, k := range keys {
		cur = cur.(map[string]any)["properties"].(map[string]any)[k]
	}
	return cur
}

// typeSchema is the schema of t at path.
func typeSchema(t reflect.Type, path string) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var s map[string]any
	switch {
	case t == durationType:
		s = copyMap(durationSchema)
	case t == thresholdType:
		s = map[string]any{"anyOf": []any{map[string]any{"type": "number"}, copyMap(durationSchema)}}
	case t.Kind() == reflect.Slice:
		s = map[string]any{"type": "array", "items": typeSchema(t.Elem(), path+"[]")}
	case t == routeRefType:
		s = map[string]any{"anyOf": []any{map[string]any{"type": "string"}, recordSchema(t, path)}}
	case isRecord(t):
		s = recordSchema(t, path)
	case t.Kind() == reflect.Int:
		s = map[string]any{"type": "integer"}
	case t.Kind() == reflect.Float64:
		s = map[string]any{"type": "number"}
	case t.Kind() == reflect.Bool:
		s = map[string]any{"type": "boolean"}
	default:
		s = map[string]any{"type": "string"}
	}
	if d := specDocs[path]; d != "" {
		s["description"] = d
	}
	for k, v := range schemaExtra[path] {
		s[k] = v
	}
	return s
}

func recordSchema(t reflect.Type, path string) map[string]any {
	props := map[string]any{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		child := name
		if path != "" {
			child = strings.TrimSuffix(path, ".") + "." + name
		}
		props[name] = typeSchema(f.Type, child)
	}
	s := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if req, ok := schemaRequired[path]; ok {
		s["required"] = req
	}
	return s
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
