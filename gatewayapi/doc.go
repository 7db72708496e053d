// Package gatewayapi sets the weights of a rollout's GRPCRoute or HTTPRoute on a Kubernetes
// API server with the sigs.k8s.io/gateway-api typed clients, in apply mode: it reads the
// route, lets the domain's rule (rollout.Target.Pick) say which rule and which two
// backendRefs hold the stable and the canary Service, changes only those two weights, and
// reads them back. Preflight checks that both backend Services exist.
//
// It imports rollout only; the controller receives a Router from cmd.
package gatewayapi
