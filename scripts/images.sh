#!/usr/bin/env bash
# Builds docflow's own images (gateway, processor, web, operator) from their Dockerfiles, with podman or
# docker (whichever is installed; DOCFLOW_CONTAINER_CLI overrides), from the repository root
# (one npm workspace lockfile). The system test (tests/system/) runs them.
#
#   bash scripts/images.sh [gateway] [processor] [web] [operator]     default: all four
#
# Env: DOCFLOW_NODE_BASE_IMAGE  base image (build argument BASE_IMAGE of every Dockerfile);
#        default node:24-bookworm-slim; scripts/containers.sh --print-env sets the local build
#        localhost/docflow/node:24-bookworm-slim on machines without a registry
#      DOCFLOW_IMAGE_TAG        tag of the built images (default dev): localhost/docflow/<service>:<tag>
# Builds run in parallel. Prints one line per image with its duration and size; the build output
# goes to a log that is shown when a build fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DOCFLOW_CACHE_DIR:-$HOME/.cache/docflow}"
BASE="${DOCFLOW_NODE_BASE_IMAGE:-node:24-bookworm-slim}"
TAG="${DOCFLOW_IMAGE_TAG:-dev}"
CLI="${DOCFLOW_CONTAINER_CLI:-}"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
DOCFLOW_LOG_TAG=images DOCFLOW_LOG_NAME_WIDTH=40 DOCFLOW_LOG_MESSAGE_WIDTH=0
if [[ -z "$CLI" ]]; then
  if command -v podman >/dev/null; then CLI=podman
  elif command -v docker >/dev/null; then CLI=docker
  else docflow_die "neither podman nor docker is installed (scripts/containers.sh provisions podman)"
  fi
fi
services=("$@")
((${#services[@]})) || services=(gateway processor web operator)
mkdir -p "$CACHE/logs"

build_one() { # service
  local service=$1 t0 image log network=() size
  t0=$(docflow_now_us)
  image="localhost/docflow/$service:$TAG"
  log="$CACHE/logs/image-$service.log"
  # --network host: build steps reach the npm registry and the apt mirror the way the host does.
  [[ "$CLI" == podman ]] && network=(--network host)
  : >"$log"
  docflow_quiet "$log" "$CLI" build "${network[@]}" --build-arg "BASE_IMAGE=$BASE" -f "$ROOT/services/$service/Dockerfile" -t "$image" "$ROOT"
  size=$("$CLI" image inspect --format '{{.Size}}' "$image" 2>/dev/null || echo 0)
  docflow_done "$image" "$t0" "built on $BASE, $((size / 1048576)) MiB"
}

for service in "${services[@]}"; do
  [[ -f "$ROOT/services/$service/Dockerfile" ]] || { echo "[images] no Dockerfile for '$service'" >&2; exit 2; }
done
# In parallel: most of a build is waiting on the registry and the apt mirror.
pids=()
for service in "${services[@]}"; do
  build_one "$service" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit "$failed"
