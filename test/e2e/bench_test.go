package e2e

import (
	"testing"
	"time"
)

// BenchmarkDemo times each scenario of `canaryd demo --until-done`, start to exit (the
// issue wants each under 3 minutes on a fresh machine), reported as s/scenario.
func BenchmarkDemo(b *testing.B) {
	for _, sc := range []string{"success", "fail", "revert"} {
		b.Run(sc, func(b *testing.B) {
			for b.Loop() {
				start := time.Now()
				d := startDemo(b, "--scenario", sc, "--until-done")
				if err := d.wait(b, limit); err != nil {
					b.Fatalf("canaryd demo --scenario %s: %v", sc, err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/scenario")
			}
		})
	}
}
