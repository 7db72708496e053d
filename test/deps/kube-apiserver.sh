#!/usr/bin/env bash
# Builds kube-apiserver from the k8s.io/kubernetes Go module into a cache
# outside the clone, once, and links etcd (from test/deps/etcd.sh) beside it.
# envtest (test/kubetest) points KUBEBUILDER_ASSETS at that directory.
#
# Idempotent: does nothing when the binary is already built. Only the Go
# module proxy is used; nothing else is downloaded.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
STAGING_VERSION="v0${K8S_VERSION#v1}" # v1.37.2 -> v0.37.2
CACHE="${CANARYD_CACHE:-$HOME/.cache/canaryd}/k8s-${K8S_VERSION}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

mkdir -p "$CACHE"

# etcd first: it is cheap and the harness needs both.
bash "$HERE/etcd.sh"
ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$CACHE/etcd"

if [[ -x "$CACHE/kube-apiserver" ]] && "$CACHE/kube-apiserver" --version >/dev/null 2>&1; then
	echo "kube-apiserver: $("$CACHE/kube-apiserver" --version) already in $CACHE"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

export GOFLAGS="-mod=mod"
go mod init canaryd.local/kube-apiserver-build >/dev/null 2>&1

# kubernetes' go.mod lists its staging modules (k8s.io/api, ...) at v0.0.0
# with replace directives to ./staging; a module that requires it must
# replace each one with the published version of the same release.
gomod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
if [[ -z "$gomod" || ! -f "$gomod" ]]; then
	echo "kube-apiserver.sh: could not download k8s.io/kubernetes@${K8S_VERSION}'s go.mod" >&2
	exit 1
fi
staging="$(grep -oE '^[[:space:]]*k8s\.io/[a-z0-9._/-]+ v0\.0\.0([[:space:]]|$)' "$gomod" | awk '{print $1}' | sort -u)"
go mod edit -require="k8s.io/kubernetes@${K8S_VERSION}"
for m in $staging; do
	go mod edit -replace="${m}=${m}@${STAGING_VERSION}"
done
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO

echo "kube-apiserver: building ${K8S_VERSION} into $CACHE (several minutes)"
go mod tidy >/dev/null 2>&1 || true
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "${STAGING_VERSION#v0.}" | cut -d. -f1)" \
	-o "$CACHE/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$CACHE/kube-apiserver.tmp" "$CACHE/kube-apiserver"
echo "kube-apiserver: $("$CACHE/kube-apiserver" --version) in $CACHE"
