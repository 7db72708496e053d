#!/usr/bin/env bash
# Installs etcd (Debian's etcd-server package) for the test Kubernetes API
# server (test/kubetest). Idempotent: does nothing when etcd is on PATH.
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# apt-get update at most once per machine.
if [[ -z "$(apt-cache policy etcd-server 2>/dev/null | grep -E 'Candidate: [0-9]')" ]]; then
	apt-get update
fi
apt-get install -y --no-install-recommends etcd-server
command -v etcd >/dev/null
