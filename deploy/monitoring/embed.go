// Package monitoring carries canaryd's Prometheus alerting rules (rules.yaml, the same
// alerts as prometheusrule.yaml) into the binary, so that the local demo's Prometheus
// evaluates exactly the alerts that ship.
package monitoring

import _ "embed"

// Rules is rules.yaml: a Prometheus rule file of canaryd's alerts.
//
//go:embed rules.yaml
var Rules []byte
