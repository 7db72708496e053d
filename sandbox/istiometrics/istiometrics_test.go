package istiometrics

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// gather returns each series of the named metric as "label=value,...": count.
func gather(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "grpc_response_status" || lp.GetName() == "destination_version" || lp.GetName() == "response_code" {
					key += lp.GetName() + "=" + lp.GetValue() + ","
				}
			}
			if c := m.GetCounter(); c != nil {
				got[key] = c.GetValue()
			} else if h := m.GetHistogram(); h != nil {
				got[key] = float64(h.GetSampleCount())
			}
		}
	}
	return got
}

func TestAddCountsWithIstioLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Add(Request{Service: "grpc-helloworld-py", Version: "v2", Duration: 3 * time.Millisecond}, 95)
	m.Add(Request{Service: "grpc-helloworld-py", Version: "v2", GRPCCode: codes.Unavailable}, 5)
	m.Touch(Request{Service: "grpc-helloworld-py", Version: "v1"})
	want := map[string]float64{
		"destination_version=v2,grpc_response_status=0,response_code=200,":  95,
		"destination_version=v2,grpc_response_status=14,response_code=200,": 5,
		"destination_version=v1,grpc_response_status=0,response_code=200,":  0,
	}
	for _, name := range []string{RequestsTotal, RequestDuration} {
		if d := cmp.Diff(want, gather(t, reg, name)); d != "" {
			t.Errorf("%s (-want +got):\n%s", name, d)
		}
	}
	lv := Request{Service: "s", Version: "v2"}.labelValues()
	if len(lv) != len(Labels) || lv[0] != "destination" || lv[3] != "s.default.svc.cluster.local" {
		t.Errorf("label values %q", lv)
	}
	m.Reset()
	if got := gather(t, reg, RequestsTotal); len(got) != 0 {
		t.Errorf("series after Reset: %v", got)
	}
}

func TestNewRefusesADoubleRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg); err == nil {
		t.Error("second New on one registry succeeded")
	}
}
