#!/usr/bin/env bash
# Installs the grpcurl CLI v1.9.4 (built from its Go module) as /usr/local/bin/grpcurl, for
# the analysis probe's parity test and benchmark. Idempotent: does nothing when that version
# is installed.
set -euo pipefail

version=v1.9.4
bin=/usr/local/bin/grpcurl
if [ -x "$bin" ] && "$bin" -version 2>&1 | grep -q "${version#v}"; then
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Build outside the project's module so its go.mod is not touched.
(cd "$tmp" && GOFLAGS=-mod=mod GOBIN="$tmp" go install \
	-ldflags "-X main.version=$version" \
	"github.com/fullstorydev/grpcurl/cmd/grpcurl@$version")
install -m 0755 "$tmp/grpcurl" "$bin"
"$bin" -version
