package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// compileSchema compiles what `canaryd schema` prints with a JSON Schema validator, as an
// editor's language server would.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	code, out, errOut := runCmd("schema")
	if code != 0 {
		t.Fatalf("canaryd schema: exit %d: %s", code, errOut)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("canaryd schema prints no JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

// instance reads a YAML spec as the JSON value a validator checks.
func instance(t *testing.T, spec string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(spec), &v); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestSchema: the shipped example validates against the schema; typos, a percentage for
// grpc-success-rate, bad steps and bad durations do not; every field has a description.
func TestSchema(t *testing.T) {
	s := compileSchema(t)
	example, err := os.ReadFile("../../deploy/examples/rollout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(instance(t, string(example))); err != nil {
		t.Fatalf("deploy/examples/rollout.yaml does not validate: %v", err)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"a typo", "  steps:", "  stpes:"},
		{"a percentage success rate", "min: 0.99", "min: 99"},
		{"a step above 100", "[0, 40, 100]", "[0, 140, 100]"},
		{"a bad duration", "interval: 30s", "interval: soon"},
		{"an unknown template", "template: grpc-latency-p99", "template: grpc-error-budget"},
		{"another kind", "kind: Rollout", "kind: Deployment"},
		{"a route of an unknown kind", "  host:", "  route: {kind: Ingress, name: x}\n  host:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(example), tc.from, tc.to, 1)
			if bad == string(example) {
				t.Fatalf("the example has no %q", tc.from)
			}
			if err := s.Validate(instance(t, bad)); err == nil {
				t.Errorf("the schema accepts %s", tc.name)
			}
		})
	}
	var walk func(path string, m map[string]any)
	walk = func(path string, m map[string]any) {
		props, _ := m["properties"].(map[string]any)
		for k, v := range props {
			child := v.(map[string]any)
			if d, _ := child["description"].(string); d == "" {
				t.Errorf("%s%s has no description", path, k)
			}
			walk(path+k+".", child)
			if alts, ok := child["anyOf"].([]any); ok {
				for _, a := range alts {
					walk(path+k+".", a.(map[string]any))
				}
			}
			if items, ok := child["items"].(map[string]any); ok {
				walk(path+k+"[].", items)
			}
		}
	}
	walk("", rolloutSchema())
}
