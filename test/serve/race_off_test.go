//go:build !race

package serve_test

// raceBuild: this test binary runs without the race detector (a benchmark), and so does
// the canaryd it builds, whose speed the benchmark measures.
const raceBuild = false
