#!/usr/bin/env bash
# Installs what gitops' tests drive as real servers and as "a person": the git CLI (with
# git daemon and git http-backend, both in Debian's git package) and gpg for
# git verify-commit. Idempotent: does nothing when both are present.
set -euo pipefail

have() { command -v git >/dev/null 2>&1 && command -v gpg >/dev/null 2>&1 &&
	[ -x "$(git --exec-path)/git-http-backend" ] && [ -x "$(git --exec-path)/git-daemon" ]; }
if have; then
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# apt-get update at most once per machine.
if [[ -z "$(apt-cache policy git 2>/dev/null | grep -E 'Candidate: [0-9]')" ]]; then
	apt-get update
fi
apt-get install -y --no-install-recommends git gpg
have
