package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/canarydio/canaryd/rollout"
)

func TestPromoteStepFullAndUndo(t *testing.T) {
	src := sampleSource()
	src.add(Rollout{Name: "four", Phase: rollout.Progressing, Run: 1, Step: 2, Steps: 4, Weights: rollout.CanaryAt(40),
		Stable: "v1", Canary: "v2"})
	url := newTestServer(t, src, testToken, nil)
	act := url + "/api/v1/rollouts/"
	for _, tc := range []struct {
		name, path, body string
		status           int
		errPart          string
		phase            rollout.Phase // after the request
		step             int
	}{
		{"full on another action", "four/pause", `{"reason": "x", "full": true}`, 400, "promote only", rollout.Progressing, 2},
		{"full not a bool", "four/promote?full=maybe", "", 400, "full", rollout.Progressing, 2},
		{"promote takes one step", "four/promote", `{"reason": "looks good"}`, 200, "", rollout.Progressing, 3},
		{"promote full", "four/promote?full=true", "", 200, "", rollout.Succeeded, 4},
		{"promote after Succeeded", "four/promote", "", 409, "refused", rollout.Succeeded, 4},
		{"undo without a reason", "four/undo", `{}`, 400, "undo needs a reason", rollout.Succeeded, 4},
		{"undo", "four/undo", `{"reason": "errors in the logs"}`, 200, "", rollout.RolledBack, 0},
		{"undo twice", "four/undo", `{"reason": "again"}`, 409, "refused", rollout.RolledBack, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(t, "POST", act+tc.path, testToken, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.errPart != "" {
				if e := decodeJSON[APIError](t, body); !strings.Contains(e.Error, tc.errPart) {
					t.Errorf("error %q does not say %q", e.Error, tc.errPart)
				}
			}
			ro, _ := src.Rollout(context.Background(), "four")
			if got, want := fmt.Sprintf("%s %d", ro.Phase, ro.Step), fmt.Sprintf("%s %d", tc.phase, tc.step); got != want {
				t.Errorf("rollout is %s, want %s", got, want)
			}
		})
	}
}
