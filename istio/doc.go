// Package istio drives the weights of one http route of a user-owned Istio
// VirtualService on a real Kubernetes API server, and runs canaryd's leader
// election on a coordination.k8s.io Lease.
//
// A Router edits exactly the two weights of the managed route and nothing
// else: the VirtualService is read and written as unstructured JSON, so
// fields this client does not know (a newer Istio's) survive every update.
// It checks before the first traffic step that the DestinationRule for the
// host defines both subsets and that the canary's Deployment is Available
// (Preflight), and in gitops mode waits for Argo CD or Flux to make the
// cluster show what Git holds (WaitFor).
//
// Elect runs a function only while this process holds the Lease, and
// cancels it the moment the lease is lost (fail-stop).
package istio
