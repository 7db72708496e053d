// Package gitops owns canaryd's Git side, with go-git: a cached clone of the deployment
// repository, the surgical edit of a VirtualService's (or a GRPCRoute's or HTTPRoute's)
// weights in a manifest, commits written
// without a worktree and pushed without ever forcing, and the reading of what people did
// (reverts, hand edits) and of canaryd's own history from commit trailers.
//
// The pure YAML editor (SetWeights, ReadWeights) does no I/O and is shared with the sandbox's
// gateway and the istio package's tests. It only builds the domain's view of a manifest's
// routes; which route holds the two backends is rollout.Target.Pick's rule, the one the
// routers apply too.
package gitops
