//go:build race

package serve_test

// raceBuild: this test binary runs with the race detector, and so does the canaryd it
// builds.
const raceBuild = true
