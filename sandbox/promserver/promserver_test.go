package promserver

import (
	"strings"
	"testing"
	"time"
)

func TestConfigListsTargets(t *testing.T) {
	got := config(Config{Targets: []string{"127.0.0.1:1", "127.0.0.1:2"}, ScrapeInterval: time.Second})
	for _, want := range []string{"scrape_interval: 1s", `targets: ["127.0.0.1:1", "127.0.0.1:2"]`} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
}
