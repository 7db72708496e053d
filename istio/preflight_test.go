package istio_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canarydio/canaryd/istio"
	"github.com/canarydio/canaryd/rollout"
	"github.com/canarydio/canaryd/test/kubetest"
)

// TestAdmissionRejection: a ValidatingAdmissionPolicy of the API server
// refuses canary weights above 50; the Router surfaces its message and the
// object stays as it was.
func TestAdmissionRejection(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const msg = "canary weight above 50 needs a change ticket"
	policy := fmt.Sprintf(`
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: cap-canary-%[1]s}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [networking.istio.io]
      apiVersions: ["*"]
      operations: [UPDATE]
      resources: [virtualservices]
  validations:
  - expression: >-
      !has(object.spec.http) || object.spec.http.all(h, !has(h.route) || h.route.all(r,
      !has(r.destination.subset) || r.destination.subset != 'v2' || !has(r.weight) || r.weight <= 50))
    message: %[2]q
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: cap-canary-%[1]s}
spec:
  policyName: cap-canary-%[1]s
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: %[1]s}
`, f.ns, msg)
	objs, err := kubetest.Decode([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Create(ctx, objs, false); err != nil {
		t.Fatalf("create the admission policy: %v", err)
	}
	t.Cleanup(func() {
		for _, o := range objs {
			if ri, err := f.client.Resource(o); err == nil {
				_ = ri.Delete(context.Background(), o.GetName(), metav1.DeleteOptions{})
			}
		}
	})
	// The policy takes effect a moment after it is created: wait until a
	// dry-run of a violating change is refused.
	violate := []byte(`{"spec":{"http":[{"match":[{"port":8080}],"route":[` +
		`{"destination":{"host":"grpc-helloworld-py","subset":"v1"},"weight":10},` +
		`{"destination":{"host":"grpc-helloworld-py","subset":"v2"},"weight":90}]}]}}`)
	kubetest.Eventually(t, 30*time.Second, func() (bool, string) {
		_, err := f.client.Dynamic.Resource(istio.VirtualServices).Namespace(f.ns).Patch(ctx, "grpc-vs",
			types.MergePatchType, violate, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), msg), fmt.Sprintf("dry-run not refused yet: %v", err)
	})

	r := f.router(t, nil)
	if err := r.SetWeights(ctx, f.doc, rollout.CanaryAt(40)); err != nil {
		t.Fatalf("40%% is within the policy: %v", err)
	}
	before := f.snapshot(t)
	err = r.SetWeights(ctx, f.doc, rollout.CanaryAt(60))
	if !errors.Is(err, istio.ErrRejected) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("SetWeights 40/60 = %v; want ErrRejected carrying %q", err, msg)
	}
	if d := cmp.Diff(before, f.snapshot(t)); d != "" {
		t.Errorf("a rejected SetWeights changed objects (-before +after):\n%s", d)
	}
}

// TestPreflight checks the DestinationRule's subsets and the canary
// Deployment's availability, changing nothing.
func TestPreflight(t *testing.T) {
	dropV2 := func(objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if o.GetKind() == "DestinationRule" {
				spec := o.Object["spec"].(map[string]any)
				spec["subsets"] = spec["subsets"].([]any)[:1]
			}
		}
	}
	otherHost := func(objs []*unstructured.Unstructured) {
		for _, o := range objs {
			if o.GetKind() == "DestinationRule" {
				o.Object["spec"].(map[string]any)["host"] = "other"
			}
		}
	}
	tests := []struct {
		name      string
		edit      func([]*unstructured.Unstructured)
		app       bool
		available []string
		want      error
		message   string
	}{
		{name: "ready", app: true, available: []string{"grpc-helloworld-py-v2"}},
		{name: "destinationrule lacks the canary subset", edit: dropV2, app: true,
			available: []string{"grpc-helloworld-py-v2"}, want: istio.ErrSubsetMissing,
			message: `dr-istio-grpc-server does not define subset "v2"`},
		{name: "no destinationrule for the host", edit: otherHost, app: true,
			available: []string{"grpc-helloworld-py-v2"}, want: istio.ErrSubsetMissing,
			message: `no destinationrule in`},
		{name: "no canary deployment", want: istio.ErrNotAvailable, message: "version=v2"},
		{name: "canary deployment not available", app: true, available: []string{"grpc-helloworld-py-v1"},
			want: istio.ErrNotAvailable, message: "grpc-helloworld-py-v2 in"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.edit)
			if tc.app {
				f.createApp(t, tc.available...)
			}
			before := f.snapshot(t)
			err := f.router(t, nil).Preflight(context.Background(), f.doc)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Preflight = %v, want nil", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Preflight = %v, want %v", err, tc.want)
			case tc.want != nil && !strings.Contains(err.Error(), tc.message):
				t.Errorf("error %q does not say %q", err, tc.message)
			}
			if d := cmp.Diff(before, f.snapshot(t)); d != "" {
				t.Errorf("Preflight changed objects (-before +after):\n%s", d)
			}
		})
	}
}

// TestPreflightAvailabilityFlips: a canary that becomes unavailable fails
// the next preflight.
func TestPreflightAvailabilityFlips(t *testing.T) {
	f := newFixture(t, nil)
	f.createApp(t, "grpc-helloworld-py-v2")
	r := f.router(t, nil)
	if err := r.Preflight(context.Background(), f.doc); err != nil {
		t.Fatalf("available canary: %v", err)
	}
	f.setAvailable(t, "grpc-helloworld-py-v2", corev1.ConditionFalse)
	if err := r.Preflight(context.Background(), f.doc); !errors.Is(err, istio.ErrNotAvailable) {
		t.Fatalf("unavailable canary: Preflight = %v, want ErrNotAvailable", err)
	}
}

// TestWaitFor: gitops mode waits until another writer (Argo CD, Flux)
// applies the weights Git holds, or reports that it did not converge.
func TestWaitFor(t *testing.T) {
	f := newFixture(t, nil)
	r := f.router(t, nil)
	ctx := context.Background()

	took, err := r.WaitFor(ctx, f.doc, rollout.CanaryAt(0), 10*time.Second)
	if err != nil || took < 0 {
		t.Fatalf("already converged: WaitFor = %s, %v", took, err)
	}

	type result struct {
		took time.Duration
		err  error
	}
	done := make(chan result, 1)
	go func() {
		took, err := r.WaitFor(ctx, f.doc, rollout.CanaryAt(40), time.Minute)
		done <- result{took, err}
	}()
	// The "GitOps controller" applies an intermediate state, then Git's.
	apply := func(w rollout.Weights) {
		patch := fmt.Sprintf(`{"spec":{"http":[{"match":[{"port":8080}],"route":[`+
			`{"destination":{"host":"grpc-helloworld-py","port":{"number":50051},"subset":"v1"},"weight":%d},`+
			`{"destination":{"host":"grpc-helloworld-py","port":{"number":50051},"subset":"v2"},"weight":%d}]}]}}`,
			w.Stable, w.Canary)
		if _, err := f.client.Dynamic.Resource(istio.VirtualServices).Namespace(f.ns).Patch(ctx, "grpc-vs",
			types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Error(err)
		}
	}
	apply(rollout.CanaryAt(20))
	apply(rollout.CanaryAt(40))
	res := <-done
	if res.err != nil || res.took <= 0 {
		t.Fatalf("WaitFor 60/40 = %s, %v; want converged", res.took, res.err)
	}

	took, err = r.WaitFor(ctx, f.doc, rollout.CanaryAt(100), 300*time.Millisecond)
	if !errors.Is(err, istio.ErrNotConverged) || !strings.Contains(err.Error(), "cluster holds 60/40") {
		t.Fatalf("WaitFor 0/100 = %v; want ErrNotConverged saying the cluster holds 60/40", err)
	}
	if took < 300*time.Millisecond {
		t.Errorf("WaitFor gave up after %s, before its deadline", took)
	}
}
