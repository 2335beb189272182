#!/usr/bin/env bash
# Builds Skaffold and a container registry from the Go module proxy, idempotently, into
# $DOCFLOW_CACHE_DIR/bin (default ~/.cache/docflow/bin), for `skaffold run` against the local
# cluster of scripts/cluster.sh (docs/deploy.md, "Skaffold on the local cluster"):
#
#   bash scripts/install-skaffold.sh            build what is missing or at another version
#   bash scripts/install-skaffold.sh --check    exit 1 (with a message) unless both are present
#   bash scripts/install-skaffold.sh --quiet    print only what it builds
#
#   - skaffold  github.com/GoogleContainerTools/skaffold/v2 ${DOCFLOW_SKAFFOLD_VERSION}
#   - registry  github.com/distribution/distribution/v3 ${DOCFLOW_REGISTRY_VERSION} (cmd/registry,
#               the registry the node pulls Skaffold's pushes from; scripts/cluster.sh registry)
#
# Skaffold does not build with a bare `go install pkg@version`: its go.mod carries replace and
# exclude directives (docker/docker and docker/cli pinned to v27, viper, mergo...). So it is built
# in a wrapper module that repeats them, read from Skaffold's own go.mod so the list never goes
# stale, with the version ldflags of Skaffold's Makefile. v2.16.1 is the newest the proxy serves
# here (v2.17.x and v2.18.0 are refused with 403). The registry needs no replaces.
#
# Same method and cache as scripts/install-envtest.sh (whose cluster binaries it does not need),
# with its own lock, so it can build beside it. Measured on a fresh machine (Go caches filling at
# the same time with CI's Kubernetes builds, which shared the 2 cores; `nice -n 19`): registry
# 265 s, Skaffold 600 s (856 modules). Only a fresh machine pays it.
# Env: DOCFLOW_CACHE_DIR, DOCFLOW_SKAFFOLD_VERSION, DOCFLOW_REGISTRY_VERSION; GOMODCACHE/GOCACHE honoured.
set -euo pipefail

DOCFLOW_SKAFFOLD_VERSION=${DOCFLOW_SKAFFOLD_VERSION:-v2.16.1}
DOCFLOW_REGISTRY_VERSION=${DOCFLOW_REGISTRY_VERSION:-v3.1.2}
SKAFFOLD_MODULE=github.com/GoogleContainerTools/skaffold/v2
REGISTRY_MODULE=github.com/distribution/distribution/v3
cache_dir=${DOCFLOW_CACHE_DIR:-$HOME/.cache/docflow}
bin_dir="$cache_dir/bin"
src_dir="$cache_dir/envtest-src"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DOCFLOW_LOG_TAG=skaffold DOCFLOW_LOG_NAME_WIDTH=15 DOCFLOW_LOG_MESSAGE_WIDTH=40

check_only=0 quiet=0 built=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --quiet) quiet=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "install-skaffold.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

if (( check_only )); then
  docflow_check_present scripts/install-skaffold.sh "$bin_dir" skaffold registry
  exit 0
fi

# build NAME MODULE VERSION PACKAGE LDFLAGS COPY-DIRECTIVES(0|1)
build() {
  local name=$1 mod=$2 v=$3 pkg=$4 ldflags=$5 copy=$6 t0 dir log gomod
  t0=$(docflow_now_us)
  if docflow_up_to_date "$bin_dir/$name" "$mod" "$v"; then
    (( quiet )) || docflow_done "$name" "$t0" "ok $v"; return 0
  fi
  echo "[skaffold] $name: building $v from the Go module proxy" >&2
  dir=$(docflow_new_wrapper "$src_dir/$name"); log="$cache_dir/$name-build.log"; : >"$log"
  if (( copy )); then
    # The module's own replace and exclude directives, single-line and block forms alike.
    gomod=$(cd "$dir" && "${docflow_go_env[@]}" go mod download -json "$mod@$v" | awk -F'"' '$2 == "GoMod" { print $4 }')
    [[ -s "$gomod" ]] || { echo "[skaffold] no go.mod for $mod@$v" >&2; return 1; }
    awk '
      /^(replace|exclude)[ \t]*\($/ { block = $1; next }
      block && /^\)/ { block = ""; next }
      block { sub(/\/\/.*/, ""); if (NF) print block, $0; next }
      /^(replace|exclude)[ \t]/ { sub(/\/\/.*/, ""); print }
    ' "$gomod" >>"$dir/go.mod"
  fi
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go get "$pkg@$v")
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go build -trimpath -ldflags "-s -w $ldflags" -o "$bin_dir/$name.new" "$pkg")
  mv -f "$bin_dir/$name.new" "$bin_dir/$name"; built=1
  docflow_done "$name" "$t0" "built $v"
}

command -v go >/dev/null || [[ -x "$bin_dir/skaffold" && -x "$bin_dir/registry" ]] \
  || docflow_die "go is required to build skaffold and the registry"
mkdir -p "$bin_dir" "$src_dir"
exec 9>"$cache_dir/.install-skaffold.lock"
flock 9
t_all=$(docflow_now_us)
build registry "$REGISTRY_MODULE" "$DOCFLOW_REGISTRY_VERSION" "$REGISTRY_MODULE/cmd/registry" \
  "-X $REGISTRY_MODULE/version.version=$DOCFLOW_REGISTRY_VERSION" 0
# Skaffold's Makefile: version, commit and date in pkg/skaffold/version (else it reports none).
build skaffold "$SKAFFOLD_MODULE" "$DOCFLOW_SKAFFOLD_VERSION" "$SKAFFOLD_MODULE/cmd/skaffold" \
  "-X $SKAFFOLD_MODULE/pkg/skaffold/version.version=$DOCFLOW_SKAFFOLD_VERSION -X $SKAFFOLD_MODULE/pkg/skaffold/version.buildDate=1970-01-01T00:00:00Z" 1
if (( built || ! quiet )); then docflow_done total "$t_all" "skaffold $DOCFLOW_SKAFFOLD_VERSION, registry $DOCFLOW_REGISTRY_VERSION"; fi
