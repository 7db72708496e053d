package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyFile copies a file of the repository into dir at rel, after edit.
func copyFile(t *testing.T, src, dir, rel string, edit func(string) string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(data))), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func same(s string) string { return s }

// TestValidateGRPCRoute: validate accepts the GRPCRoute example with its manifest beside it,
// and reports, at the rule's position in the manifest, a rule that lacks a backend.
func TestValidateGRPCRoute(t *testing.T) {
	dir := t.TempDir()
	spec := copyFile(t, "../../deploy/examples/rollout-grpcroute.yaml", dir, "rollouts/grpc.yaml", same)
	route := copyFile(t, "../../deploy/sample-gateway-api/route.yaml", dir, "deploy/sample-gateway-api/route.yaml", same)
	if code, out, errOut := runCmd("validate", spec); code != 0 || out != "" || !strings.Contains(errOut, "is valid") {
		t.Fatalf("the example with its manifest: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	copyFile(t, "../../deploy/sample-gateway-api/route.yaml", dir, "deploy/sample-gateway-api/route.yaml", func(s string) string {
		return strings.Replace(s, "name: grpc-helloworld-py-v2", "name: grpc-helloworld-py-v3", 1)
	})
	code, out, _ := runCmd("validate", spec)
	want := route + `:13:5: grpcroute default/grpc-route rule "greeter": rule "greeter" has no backendRef to Service "grpc-helloworld-py-v2" port 50051 (rollout "grpc-helloworld-py", ` + spec + `:8:10)`
	if code != 1 || strings.TrimSpace(out) != want {
		t.Errorf("a rule without the canary: exit %d,\n got %s\nwant %s", code, strings.TrimSpace(out), want)
	}
	copyFile(t, "../../deploy/sample-gateway-api/route.yaml", dir, "deploy/sample-gateway-api/route.yaml", func(s string) string {
		return strings.Replace(s, "      weight: 0\n", "", 1)
	})
	if code, out, _ := runCmd("validate", spec); code != 1 || !strings.Contains(out, "weights do not sum to 100") {
		t.Errorf("a canary backendRef without a weight (the API's default is 1): exit %d, %q", code, out)
	}
	if code, out, errOut := runCmd("validate", "--root", filepath.Join(dir, "nowhere"), spec); code != 0 || out != "" || !strings.Contains(errOut, "not found") {
		t.Errorf("a manifest not found is a note, not a problem: exit %d, %q, %q", code, out, errOut)
	}
}

// TestValidateTarget: a spec naming both a VirtualService and a route, or neither, is
// reported with its position.
func TestValidateTarget(t *testing.T) {
	dir := t.TempDir()
	both := copyFile(t, "../../deploy/examples/rollout-grpcroute.yaml", dir, "both.yaml", func(s string) string {
		return strings.Replace(s, "spec:\n", "spec:\n  virtualService: {namespace: default, name: grpc-vs}\n", 1)
	})
	code, out, _ := runCmd("validate", both)
	if want := both + ":9:10: spec.route: names a GRPCRoute while spec.virtualService names default/grpc-vs"; code != 1 || !strings.HasPrefix(out, want) {
		t.Errorf("both: exit %d, %q, want prefix %q", code, out, want)
	}
	neither := copyFile(t, "../../deploy/examples/rollout-grpcroute.yaml", dir, "neither.yaml", func(s string) string {
		return strings.Replace(s, "  route: {kind: GRPCRoute, namespace: default, name: grpc-route, rule: greeter, port: 50051}\n", "", 1)
	})
	code, out, _ = runCmd("validate", neither)
	if want := neither + ":8:3: spec.virtualService: is required"; code != 1 || !strings.HasPrefix(out, want) {
		t.Errorf("neither: exit %d, %q, want prefix %q", code, out, want)
	}
}
