// Package analysis owns the gates that decide whether a canary is healthy: Prometheus
// checks on Istio's standard metrics that understand gRPC (the real status is in the
// grpc_response_status label, not the HTTP code), custom PromQL checks, and an in-process
// grpcurl probe that asserts the reply.
//
// Every check returns a rollout.Verdict with its evidence. The four outcomes are kept
// apart: pass, fail (a value out of bounds, a call that failed or did not match),
// inconclusive (no data, NaN, too few requests) and error (Prometheus unreachable, a bad
// query, a probe that cannot run). Neither an error nor an inconclusive verdict is ever a
// pass.
package analysis
