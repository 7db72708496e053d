package analysis

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/canarydio/canaryd/rollout"
)

// TestPrometheusBrokenAnswers stands a broken proxy in front of Prometheus: an HTTP server
// that answers 200 with a success envelope but no usable result. Every such answer must be
// an Error verdict, never a pass and never a panic, for every query a gate makes.
func TestPrometheusBrokenAnswers(t *testing.T) {
	bodies := []struct{ name, body string }{
		// A null vector reads as an empty one: no series, which onNoData decides (hold).
		{"null result", `{"status":"success","data":{"resultType":"vector","result":null}}`},
		{"no data", `{"status":"success"}`},
		{"null data", `{"status":"success","data":null}`},
		{"null sample", `{"status":"success","data":{"resultType":"vector","result":[null]}}`},
		{"null scalar", `{"status":"success","data":{"resultType":"scalar","result":null}}`},
		{"matrix", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}`},
		{"string", `{"status":"success","data":{"resultType":"string","result":[1,"1"]}}`},
		{"unknown type", `{"status":"success","data":{"resultType":"histogram","result":[]}}`},
		{"empty object", `{}`},
	}
	metrics := []struct {
		name string
		m    rollout.Metric
	}{
		{"template", rollout.Metric{Template: rollout.TemplateSuccessRate, Min: minimum(0.99), MinRequests: 5}},
		{"custom query", rollout.Metric{Name: "custom", Query: `sum(up)`, Max: minimum(1)}},
		{"compare to stable", rollout.Metric{Name: "cmp", Query: `sum(up)`,
			CompareToStable: &rollout.Compare{}}},
	}
	for _, b := range bodies {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, b.body)
		}))
		t.Cleanup(srv.Close)
		for _, mt := range metrics {
			t.Run(b.name+"/"+mt.name, func(t *testing.T) {
				gate := NewPrometheus(PrometheusOptions{})
				v := gate.Check(t.Context(), doc("hello", srv.URL), metric(mt.m))
				if v.Result == rollout.Pass || v.Result == rollout.Fail {
					t.Fatalf("got %s %q, want error (or inconclusive for no series)", v.Result, v.Reason)
				}
				if b.name == "null result" {
					if v.Result != rollout.Inconclusive {
						t.Errorf("got %s %q, want inconclusive", v.Result, v.Reason)
					}
					return
				}
				if v.Result != rollout.Error {
					t.Errorf("got %s %q, want error", v.Result, v.Reason)
				}
			})
		}
	}
}

// TestCompareStableBroken: the canary's query answers and the stable subset's does not; the
// comparison must be an error, not a pass on the canary's bounds alone.
func TestCompareStableBroken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(r.FormValue("query"), `"v1"`) {
			io.WriteString(w, `{"status":"success","data":null}`)
			return
		}
		io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5"]}]}}`)
	}))
	t.Cleanup(srv.Close)
	m := metric(rollout.Metric{Name: "cmp", Query: `sum(x{version="{{ .Canary }}"})`, Max: minimum(1),
		CompareToStable: &rollout.Compare{}})
	v := NewPrometheus(PrometheusOptions{}).Check(t.Context(), doc("hello", srv.URL), m)
	if v.Result != rollout.Error || !strings.Contains(v.Reason, "stable") {
		t.Errorf("got %s %q, want an error about the stable subset", v.Result, v.Reason)
	}
}

// TestGuardPanic: a gate that panics is that gate's Error verdict; the caller goes on.
func TestGuardPanic(t *testing.T) {
	g := New(Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { g.Close() })
	v := g.guard("custom", func() rollout.Verdict {
		var m *rollout.Metric
		return rollout.Verdict{Gate: m.GateName()}
	})
	if v.Result != rollout.Error || v.Gate != "custom" || !strings.Contains(v.Reason, "panicked") {
		t.Errorf("got %+v, want an error verdict of gate custom that says it panicked", v)
	}
	v = g.guard("probe", func() rollout.Verdict { return rollout.Verdict{Gate: "probe", Result: rollout.Pass} })
	if v.Result != rollout.Pass {
		t.Errorf("a gate that does not panic: got %s, want pass", v.Result)
	}
}
