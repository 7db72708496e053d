package gatewayapi

import "errors"

// Errors the Router returns, wrapped with the route and the details; match them with
// errors.Is. Every one of them means nothing was changed.
var (
	// ErrNotFound: the GRPCRoute or HTTPRoute does not exist.
	ErrNotFound = errors.New("route not found")
	// ErrRuleNotFound: no rule is named (or numbered) as the spec says, or none holds
	// both backendRefs.
	ErrRuleNotFound = errors.New("rule not found")
	// ErrAmbiguousRule: several rules (or backendRefs) match and the spec names none.
	ErrAmbiguousRule = errors.New("rule is ambiguous")
	// ErrBadWeights: the weights are not 0..100 summing to 100, or the rule sends traffic
	// to other backends so that it would not sum to 100.
	ErrBadWeights = errors.New("weights would not sum to 100")
	// ErrServiceMissing: a backend Service does not exist, or lacks the port the
	// backendRef names.
	ErrServiceMissing = errors.New("backend service missing")
	// ErrRejected: the API server refused the update (admission, validation or
	// authorization); the error carries the server's message.
	ErrRejected = errors.New("api server rejected the update")
	// ErrNotConfirmed: the update was accepted but reading it back showed other weights.
	ErrNotConfirmed = errors.New("weights not confirmed")
)
