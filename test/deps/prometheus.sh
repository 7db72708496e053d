#!/usr/bin/env bash
# Installs Debian's Prometheus server (/usr/bin/prometheus), which the analysis tests and
# test/promtest start on a loopback port. Idempotent: does nothing when it is installed.
set -euo pipefail

if [ -x /usr/bin/prometheus ]; then
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# apt-get update at most once: only when apt does not know the package yet.
if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	apt-get -o DPkg::Lock::Timeout=600 update -qq
fi
# The package's service is not wanted: tests start their own server.
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus >/dev/null
# Stop a service the package may have started, so it does not hold :9090.
if command -v service >/dev/null 2>&1; then
	service prometheus stop >/dev/null 2>&1 || true
fi
test -x /usr/bin/prometheus
