package istio

import "errors"

// Errors the Router returns, wrapped with the VirtualService and the details;
// match them with errors.Is. Every one of them means nothing was changed.
var (
	// ErrNotFound: the VirtualService does not exist.
	ErrNotFound = errors.New("virtualservice not found")
	// ErrRouteNotFound: no http route is named as the spec says, or none holds
	// both subsets of the host.
	ErrRouteNotFound = errors.New("route not found")
	// ErrAmbiguousRoute: several http routes (or destinations) match and the
	// spec names none.
	ErrAmbiguousRoute = errors.New("route is ambiguous")
	// ErrBadWeights: the weights are not 0..100 summing to 100, or the route
	// sends traffic to other destinations so that the route would not sum to 100.
	ErrBadWeights = errors.New("weights would not sum to 100")
	// ErrSubsetMissing: the DestinationRule for the host is missing or does not
	// define both subsets.
	ErrSubsetMissing = errors.New("subset missing")
	// ErrNotAvailable: the canary subset's Deployment is missing or not Available.
	ErrNotAvailable = errors.New("canary deployment not available")
	// ErrRejected: the API server refused the update (admission, validation or
	// authorization); the error carries the server's message.
	ErrRejected = errors.New("api server rejected the update")
	// ErrNotConfirmed: the update was accepted but reading it back showed other
	// weights (a mutating webhook or another writer changed them).
	ErrNotConfirmed = errors.New("weights not confirmed")
	// ErrNotConverged: WaitFor's deadline passed before the cluster showed the
	// weights Git holds.
	ErrNotConverged = errors.New("virtualservice did not converge")
	// ErrLeadershipLost: Elect's lease was lost (renewal failed or another
	// identity took it) while this process was leading.
	ErrLeadershipLost = errors.New("leadership lost")
)
