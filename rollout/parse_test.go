package rollout

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExampleIsValid(t *testing.T) {
	data, err := os.ReadFile("../deploy/examples/rollout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Parse("rollout.yaml", data)
	if err != nil {
		t.Fatalf("the design's example must validate:\n%v", err)
	}
	if len(docs) != 1 {
		t.Fatalf("got %d documents, want 1", len(docs))
	}
	s := docs[0].Spec
	if got, want := s.Steps, []int{0, 40, 100}; !cmp.Equal(got, want) {
		t.Errorf("steps = %v, want %v", got, want)
	}
	if s.Analysis.Bake.Duration != 5*time.Minute || s.Analysis.FailureLimit != 2 || s.Analysis.Interval.Duration != 30*time.Second {
		t.Errorf("analysis = %+v", s.Analysis)
	}
	if m := s.Analysis.Metrics[0]; m.Template != TemplateErrorsVsStable || m.AlphaOr() != 0.01 || m.MinCanaryRequests() != 1000 {
		t.Errorf("the default gate = %+v, want grpc-errors-vs-stable", m)
	}
	if lv := &s.Analysis.Metrics[1]; lv.Max.For(lv) != 100 {
		t.Errorf("latency-vs-stable max = %v ms, want 100", lv.Max.For(lv))
	}
	lat := &s.Analysis.Metrics[3]
	if got := lat.Max.For(lat); got != 500 {
		t.Errorf("latency max = %v ms, want 500", got)
	}
	if m := s.Analysis.Metrics[2]; m.OnNoData != "hold" || m.MinRequests != 20 || m.Window.Duration != time.Minute {
		t.Errorf("success-rate metric = %+v", m)
	}
	cmd := s.Probe.Command
	want := &GRPCurlCommand{Data: `{"name":"Jack"}`, Plaintext: true, Address: "istio-ingressgateway.istio-system:8080", Method: "helloworld.Greeter/SayHello"}
	if diff := cmp.Diff(want, cmd); diff != "" {
		t.Errorf("probe command (-want +got):\n%s", diff)
	}
	if *s.Probe.MinSuccess != 1.0 || s.Probe.Count != 5 || s.Probe.Timeout.Duration != 2*time.Second {
		t.Errorf("probe = %+v", s.Probe)
	}
	if line, col := docs[0].Position("spec.steps[1]"); line != 11 || col != 14 {
		t.Errorf("spec.steps[1] at %d:%d, want 11:14", line, col)
	}
}

// base is a minimal valid spec; cases edit it line by line.
const base = `apiVersion: canaryd.io/v1alpha1
kind: Rollout
metadata:
  name: demo
spec:
  virtualService: {namespace: default, name: grpc-vs}
  host: grpc-helloworld-py
  stable: v1
  canary: v2
  manifest: deploy/sample/rules.yaml
  steps: [0, 40, 100]
  schedule: "*/10 * * * *"
`

func TestValidationProblems(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		want []string // FILE:LINE:COL: field: why prefixes, in order
	}{
		{"a vs-stable gate's settings", func(s string) string {
			return s + "  analysis:\n    metrics:\n      - template: grpc-errors-vs-stable\n        alpha: 2\n        min: 0.5\n        tolerance: -1\n      - template: grpc-latency-vs-stable\n"
		}, []string{
			`f.yaml:16:16: spec.analysis.metrics[0].alpha: must be within (0, 0.5], not 2`,
			`f.yaml:17:14: spec.analysis.metrics[0].min: grpc-errors-vs-stable takes no min`,
			`f.yaml:18:20: spec.analysis.metrics[0].tolerance: must not be negative`,
		}},
		{"the issue's four problems", func(s string) string {
			s = strings.Replace(s, "canary: v2", "canary: v1", 1)
			s = strings.Replace(s, "[0, 40, 100]", "[0, 140, 100]\n  stpes: [1]", 1)
			return strings.Replace(s, `"*/10 * * * *"`, `"*/61 * * * *"`, 1)
		}, []string{
			`f.yaml:9:11: spec.canary: must differ from stable`,
			`f.yaml:11:14: spec.steps[1]: 140 is outside 0..100`,
			`f.yaml:12:3: spec.stpes: unknown field "stpes" (did you mean "steps"?)`,
			`f.yaml:13:13: spec.schedule: "*/61 * * * *": minute step 61`,
		}},
		{"missing names", func(s string) string {
			s = strings.Replace(s, "name: demo", `name: ""`, 1)
			return strings.Replace(s, "  host: grpc-helloworld-py\n", "", 1)
		}, []string{
			`f.yaml:4:9: metadata.name: is required`,
			`f.yaml:6:3: spec.host: is required`,
		}},
		{"steps not rising, duplicated, not ending at 100", func(s string) string {
			return strings.Replace(s, "[0, 40, 100]", "[0, 50, 50, 20, 90]", 1)
		}, []string{
			`f.yaml:11:18: spec.steps[2]: 50 is duplicated`,
			`f.yaml:11:22: spec.steps[3]: 20 is lower than the step before it (50)`,
			`f.yaml:11:26: spec.steps[4]: the last step must be 100, not 90`,
		}},
		{"negative step and no steps", func(s string) string {
			return strings.Replace(s, "[0, 40, 100]", "[-1, 100]", 1)
		}, []string{`f.yaml:11:11: spec.steps[0]: -1 is outside 0..100`}},
		{"bad time zone and cron", func(s string) string {
			return strings.Replace(s, `"*/10 * * * *"`, "\"every 5m\"\n  timeZone: Mars/Olympus", 1)
		}, []string{
			`f.yaml:12:13: spec.schedule: "every 5m" is not a cron expression`,
			`f.yaml:13:13: spec.timeZone: unknown time zone "Mars/Olympus"`,
		}},
		{"bad time zone", func(s string) string {
			return s + "  timeZone: Mars/Olympus\n"
		}, []string{`f.yaml:13:13: spec.timeZone: unknown time zone "Mars/Olympus"`}},
		{"@every and seconds are accepted", func(s string) string {
			return strings.Replace(s, `"*/10 * * * *"`, `"@every 30s"`, 1)
		}, nil},
		{"durations, min > max, templates, onNoData", func(s string) string {
			return s + `  analysis:
    interval: soon
    bake: -5m
    failureLimit: 2
    metrics:
      - template: grpc-success-rate
        min: 0.99
        max: 0.5
        onNoData: ignore
      - template: grpc-error-budget
        max: 1
      - name: mine
        query: sum(rate(x{v="{{ .Canery }}"}[1m]))
        max: 1
`
		}, []string{
			`f.yaml:14:15: spec.analysis.interval: "soon" is not a duration`,
			`f.yaml:15:11: spec.analysis.bake: must be positive, not -5m`,
			`f.yaml:19:14: spec.analysis.metrics[0].min: min 0.99 is greater than max 0.5`,
			`f.yaml:21:19: spec.analysis.metrics[0].onNoData: must be "hold" or "fail", not "ignore"`,
			`f.yaml:22:19: spec.analysis.metrics[1].template: unknown template "grpc-error-budget"`,
			`f.yaml:25:16: spec.analysis.metrics[2].query: not a valid template`,
		}},
		{"probe: missing method, bad JSON", func(s string) string {
			return s + `  probe:
    grpcurl: -d '{"name":' -plaintext gw:8080 helloworld.Greeter/SayHello
    minSuccess: 2
`
		}, []string{
			`f.yaml:14:14: spec.probe.grpcurl: -d: "{\"name\":" is not valid JSON`,
			`f.yaml:15:17: spec.probe.minSuccess: must be within 0..1, not 2`,
		}},
		{"probe: no address", func(s string) string {
			return s + "  probe:\n    grpcurl: -plaintext helloworld.Greeter/SayHello\n"
		}, []string{`f.yaml:14:14: spec.probe.grpcurl: the method is missing after "helloworld.Greeter/SayHello"`}},
		{"wrong types", func(s string) string {
			s = strings.Replace(s, "[0, 40, 100]", "[0, forty, 100]", 1)
			return strings.Replace(s, "stable: v1", "stable: [v1]", 1)
		}, []string{
			`f.yaml:8:11: spec.stable: must be a string`,
			`f.yaml:11:14: spec.steps[1]: must be an integer, not "forty"`,
		}},
		{"wrong kind", func(s string) string {
			return strings.Replace(s, "kind: Rollout", "kind: Deployment", 1)
		}, []string{`f.yaml:2:7: kind: must be "Rollout", not "Deployment"`}},
		{"YAML syntax error", func(s string) string {
			return s + "  bad: [unclosed\n"
		}, []string{`f.yaml:`}},
		{"several documents, each validated, names unique", func(s string) string {
			second := strings.Replace(s, "steps: [0, 40, 100]", "steps: [0, 40]", 1)
			return s + "---\n" + second
		}, []string{
			`f.yaml:17:9: metadata.name: rollout "demo" is already defined in document 1`,
			`f.yaml:24:14: spec.steps[1]: the last step must be 100, not 40`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.edit(base)))
			var got []string
			var ps Problems
			if err != nil && !errors.As(err, &ps) {
				t.Fatalf("error is %T, want Problems: %v", err, err)
			}
			for _, p := range ps {
				got = append(got, p.String())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d:\n got %s\nwant %s...", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseGRPCurl(t *testing.T) {
	tests := []struct {
		line    string
		want    *GRPCurlCommand
		wantErr string
	}{
		{`grpcurl -d '{"name":"Jack"}' -plaintext 127.0.0.1:8080 helloworld.Greeter/SayHello`,
			&GRPCurlCommand{Data: `{"name":"Jack"}`, Plaintext: true, Address: "127.0.0.1:8080", Method: "helloworld.Greeter/SayHello"}, ""},
		{`-H 'x-user: a b' -H "x-b: \"q\"" -authority api.example.com -max-time 1.5 --insecure gw:443 helloworld.Greeter.SayHello`,
			&GRPCurlCommand{Headers: []string{"x-user: a b", `x-b: "q"`}, Authority: "api.example.com", MaxTime: 1500 * time.Millisecond,
				Insecure: true, Address: "gw:443", Method: "helloworld.Greeter/SayHello"}, ""},
		{`-protoset a.pb -protoset=b.pb -plaintext=true gw:1 p.S/M`,
			&GRPCurlCommand{Protosets: []string{"a.pb", "b.pb"}, Plaintext: true, Address: "gw:1", Method: "p.S/M"}, ""},
		{`-d '{"a":1}{"a":2}' -plaintext gw:1 p.S/M`, &GRPCurlCommand{Data: `{"a":1}{"a":2}`, Plaintext: true, Address: "gw:1", Method: "p.S/M"}, ""},
		{`-d '[1]' gw:1 p.S/M`, nil, "not a JSON object"},
		{`-d @ gw:1 p.S/M`, nil, "standard input"},
		{`-plaintext -insecure gw:1 p.S/M`, nil, "cannot be used together"},
		{`-cert c.pem gw:1 p.S/M`, nil, "-cert and -key"},
		{`-plaintext gw p.S/M`, nil, "not HOST:PORT"},
		{`-plaintext gw:99999 p.S/M`, nil, "no valid port"},
		{`-plaintext gw:1 SayHello`, nil, "not package.Service/Method"},
		{`-plaintext gw:1 p.S/M extra`, nil, "unexpected arguments"},
		{`-frobnicate gw:1 p.S/M`, nil, "unknown or unsupported grpcurl flag -frobnicate"},
		{`-d '{"a":1} gw:1 p.S/M`, nil, "unterminated ' quote"},
		{`-d "$(cat x)" gw:1 p.S/M`, nil, "shell expansion"},
		{`-plaintext gw:1 p.S/M | tee x`, nil, "shell syntax"},
		{`-H novalue gw:1 p.S/M`, nil, `not "name: value"`},
		{`-d`, nil, "-d needs a value"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := ParseGRPCurl(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestScheduleHonoursTimeZone(t *testing.T) {
	s, err := NewSchedule("0 9 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	// 09:00 in Berlin is 08:00 UTC in winter.
	if got, want := s.Next(from), time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Next = %v, want %v", got, want)
	}
	if got := s.Next(from).Location(); got != time.UTC {
		t.Errorf("Next returned location %v, want the caller's", got)
	}
	every, err := NewSchedule("@every 30s", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := every.Next(from); !got.Equal(from.Add(30 * time.Second)) {
		t.Errorf("@every 30s: Next = %v", got)
	}
}

func TestDescribeRoundTrip(t *testing.T) {
	s := &Spec{Stable: "v1", Canary: "v2"}
	w := Weights{Stable: 60, Canary: 40}
	text := s.Describe(w)
	if text != "v1=60,v2=40" {
		t.Fatalf("Describe = %q", text)
	}
	got, err := s.ParseDescribed(text)
	if err != nil || got != w {
		t.Fatalf("ParseDescribed = %v, %v", got, err)
	}
	for _, bad := range []string{"v1=60", "v1=60,v3=40", "v1=61,v2=40", "v1=x,v2=40"} {
		if _, err := s.ParseDescribed(bad); err == nil {
			t.Errorf("ParseDescribed(%q) succeeded", bad)
		}
	}
}

func TestDecodeYAMLRejectsUnknownFields(t *testing.T) {
	var v struct {
		Listen string `yaml:"listen"`
		Git    struct {
			URL string `yaml:"url"`
		} `yaml:"git"`
	}
	err := DecodeYAML("c.yaml", []byte("listen: x\ngit:\n  ulr: y\n"), &v)
	if err == nil || !strings.Contains(err.Error(), `c.yaml:3:3: git.ulr: unknown field "ulr" (did you mean "url"?)`) {
		t.Fatalf("err = %v", err)
	}
}
