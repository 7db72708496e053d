#!/usr/bin/env bash
# Installs OpenSSH's server (Debian's openssh-server) for gitops' ssh:// tests, which start
# their own sshd on a loopback port with a throwaway host key and known_hosts file. The
# package's own service is not started or enabled by this script. Idempotent: does nothing
# when /usr/sbin/sshd exists (beyond making sure /run/sshd does).
set -euo pipefail

# sshd refuses to start as root without its privilege separation directory, which the
# package's service would create at boot.
if [ -x /usr/sbin/sshd ]; then
	mkdir -p /run/sshd
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# apt-get update at most once per machine.
if [[ -z "$(apt-cache policy openssh-server 2>/dev/null | grep -E 'Candidate: [0-9]')" ]]; then
	apt-get update
fi
# policy-rc.d keeps the package from starting a system sshd in containers without init.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y --no-install-recommends openssh-server
mkdir -p /run/sshd
[ -x /usr/sbin/sshd ]
