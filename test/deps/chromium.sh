#!/usr/bin/env bash
# Installs Debian's Chromium (/usr/bin/chromium), which the server's status-page test runs
# headless to render the page and find the rollout and its chart. Idempotent: does nothing
# when it is installed.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# apt-get update at most once: only when apt does not know the package yet.
if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	apt-get -o DPkg::Lock::Timeout=600 update -qq
fi
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
test -x /usr/bin/chromium
