package rollout

import (
	"errors"
	"strings"
	"testing"
)

// TestSuccessRateBounds: grpc-success-rate's bounds are ratios; a percentage gets a hint.
func TestSuccessRateBounds(t *testing.T) {
	for _, tc := range []struct {
		bounds string
		want   string // a problem's prefix, or "" for none
	}{
		{"min: 0.95", ""},
		{"min: 95", `f.yaml:16:14: spec.analysis.metrics[0].min: 95 is outside 0..1: grpc-success-rate is a ratio, not a percentage; did you mean 0.95?`},
		{"max: 99.9", `f.yaml:16:14: spec.analysis.metrics[0].max: 99.9 is outside 0..1: grpc-success-rate is a ratio, not a percentage; did you mean 0.999?`},
		{"min: 250", `f.yaml:16:14: spec.analysis.metrics[0].min: 250 is outside 0..1`},
		{"min: -0.5", `f.yaml:16:14: spec.analysis.metrics[0].min: -0.5 is outside 0..1`},
		{"min: 500ms", `f.yaml:16:14: spec.analysis.metrics[0].min: grpc-success-rate is a ratio of successful calls within 0..1, not a duration`},
	} {
		t.Run(tc.bounds, func(t *testing.T) {
			spec := base + "  analysis:\n    metrics:\n      - template: grpc-success-rate\n        " + tc.bounds + "\n"
			_, err := Parse("f.yaml", []byte(spec))
			var ps Problems
			if err != nil && !errors.As(err, &ps) {
				t.Fatalf("error is %T: %v", err, err)
			}
			switch {
			case tc.want == "" && len(ps) > 0:
				t.Errorf("problems for %s: %v", tc.bounds, ps)
			case tc.want != "" && (len(ps) != 1 || !strings.HasPrefix(ps[0].String(), tc.want)):
				t.Errorf("problems %v\nwant one starting %s", ps, tc.want)
			}
		})
	}
}
