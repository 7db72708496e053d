package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestStartScrapesTargets starts the real server and waits until it has scraped a target.
func TestStartScrapesTargets(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# TYPE promtest_answer gauge\npromtest_answer 42")
	}))
	defer target.Close()
	s := StartT(t, strings.TrimPrefix(target.URL, "http://"))
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if v, ok := query(t, s.URL, "promtest_answer"); ok {
			if v != "42" {
				t.Fatalf("promtest_answer = %s, want 42", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("target not scraped within 30s")
		}
		<-tick.C
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := http.Get(s.URL + "/-/ready"); err == nil {
		t.Error("prometheus still answers after Stop")
	}
}

func TestStartFailsWithoutTheBinary(t *testing.T) {
	_, err := Start(context.Background(), Config{Binary: "/nonexistent/prometheus"})
	if err == nil {
		t.Fatal("Start with a missing binary succeeded")
	}
}

// query returns the first sample's value of an instant query, if any.
func query(t *testing.T, base, q string) (string, bool) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if len(body.Data.Result) == 0 {
		return "", false
	}
	return fmt.Sprint(body.Data.Result[0].Value[1]), true
}
