// Package rollout holds canaryd's domain: the Rollout spec and its validation, the step plan,
// weights, phases, verdicts, the persisted per-rollout State and the history Event.
//
// It does no I/O beyond reading time zone data, and depends only on the standard library, a
// YAML parser and robfig/cron's schedule parser. Every other package speaks in these types.
package rollout
