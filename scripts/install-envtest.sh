#!/usr/bin/env bash
# Builds a real Kubernetes API server for tests (envtest style: kube-apiserver + etcd, no kubelet)
# from the Go module proxy, idempotently, into $DOCFLOW_CACHE_DIR/bin (default ~/.cache/docflow/bin):
#
#   bash scripts/install-envtest.sh            build what is missing or at another version
#   bash scripts/install-envtest.sh --check    exit 1 (with a message) unless both are present
#   bash scripts/install-envtest.sh --quiet    print only what it builds (scripts/bootstrap.sh)
#
#   - kube-apiserver  k8s.io/kubernetes ${DOCFLOW_KUBE_VERSION}
#   - etcd            go.etcd.io/etcd/server/v3 ${DOCFLOW_ETCD_VERSION}
#
# Neither builds with a bare `go install pkg@version`: both modules carry replace directives
# (k8s.io/kubernetes points every k8s.io/* staging module at ./staging, etcd's server at ../api...).
# So each is built from a small wrapper module that requires it; for Kubernetes the wrapper pins
# every staging module to the matching v0.x release (v1.37.2 -> v0.37.2), read from the replace
# directives of k8s.io/kubernetes' own go.mod so the list never goes stale.
# The apiserver gets the version ldflags of Kubernetes' own build (hack/lib/version.sh): without
# them it reports v0.0.0-master, and its emulation/compatibility version would be wrong.
#
# A cold build (empty Go module and build caches) downloads ~0.8 GB of modules and takes ~14 CPU
# minutes (measured: etcd 103 s, kube-apiserver 20 min wall on a busy shared 2-core machine; about
# 8 min expected on an idle one); only a fresh machine pays it. Prints one line with its duration
# per binary on stderr; build output goes to a log that is shown only on failure. Env: DOCFLOW_CACHE_DIR, DOCFLOW_KUBE_VERSION, DOCFLOW_ETCD_VERSION;
# GOMODCACHE/GOCACHE are honoured (point them at empty dirs to time a cold build).
set -euo pipefail

DOCFLOW_KUBE_VERSION=${DOCFLOW_KUBE_VERSION:-v1.37.2}
DOCFLOW_ETCD_VERSION=${DOCFLOW_ETCD_VERSION:-v3.6.16}
cache_dir=${DOCFLOW_CACHE_DIR:-$HOME/.cache/docflow}
bin_dir="$cache_dir/bin"
src_dir="$cache_dir/envtest-src"

now_us() { printf '%s\n' "${EPOCHREALTIME/[,.]/}"; }
done_line() { # name start-us message
  local dur=$(( ($(now_us) - $2) / 1000 ))
  printf '[envtest] %-15s %-40s (%d.%03ds)\n' "$1" "$3" $((dur / 1000)) $((dur % 1000)) >&2
}
quiet() { # log cmd...
  local log=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    echo "[envtest] FAILED: $*" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}
# The version of module $2 that binary $1 was built with ("" when unknown).
dep_version() { go version -m "$1" 2>/dev/null | awk -v m="$2" '($1 == "dep" || $1 == "mod") && $2 == m { print $3 }'; }

check_only=0 quiet=0 built=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --quiet) quiet=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "install-envtest.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

if (( check_only )); then
  missing=()
  for b in kube-apiserver etcd; do [[ -x "$bin_dir/$b" ]] || missing+=("$bin_dir/$b"); done
  if (( ${#missing[@]} )); then
    echo "[envtest] missing: ${missing[*]} (run: bash scripts/install-envtest.sh)" >&2
    exit 1
  fi
  exit 0
fi

# Go environment shared by both builds: static binaries, no workspace, the module proxy.
go_env=(env "GOFLAGS=-mod=mod -buildvcs=false" GOWORK=off CGO_ENABLED=0)

# ensure NAME MODULE VERSION: 0 when $bin_dir/NAME was built from MODULE@VERSION.
up_to_date() {
  local bin="$bin_dir/$1"
  [[ -x "$bin" ]] || return 1
  if ! command -v go >/dev/null; then return 0; fi   # present, cannot check: keep it
  [[ "$(dep_version "$bin" "$2")" == "$3" ]]
}

# A wrapper module in $src_dir/NAME (recreated each build, so a version change starts clean).
new_wrapper() { # name
  local dir="$src_dir/$1"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module docflow.local/envtest/%s\n\ngo 1.26\n' "$1" >"$dir/go.mod"
  printf '%s\n' "$dir"
}

build_etcd() {
  local t0 dir log
  t0=$(now_us)
  if up_to_date etcd go.etcd.io/etcd/server/v3 "$DOCFLOW_ETCD_VERSION"; then
    (( quiet )) || done_line etcd "$t0" "ok $DOCFLOW_ETCD_VERSION"; return 0
  fi
  echo "[envtest] etcd: building $DOCFLOW_ETCD_VERSION from the Go module proxy" >&2
  dir=$(new_wrapper etcd); log="$cache_dir/etcd-build.log"; : >"$log"
  # server/v3's own requirements name the matching api/client/pkg modules: no pins needed.
  (cd "$dir" && quiet "$log" "${go_env[@]}" go get "go.etcd.io/etcd/server/v3@$DOCFLOW_ETCD_VERSION")
  (cd "$dir" && quiet "$log" "${go_env[@]}" go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd.new" go.etcd.io/etcd/server/v3)
  mv -f "$bin_dir/etcd.new" "$bin_dir/etcd"; built=1
  done_line etcd "$t0" "built $("$bin_dir/etcd" --version | awk 'NR == 1 { print $3 }')"
}

build_kube_apiserver() {
  local t0 dir log gomod minor staging=() m v=$DOCFLOW_KUBE_VERSION
  t0=$(now_us)
  if up_to_date kube-apiserver k8s.io/kubernetes "$v"; then
    (( quiet )) || done_line kube-apiserver "$t0" "ok $v"; return 0
  fi
  echo "[envtest] kube-apiserver: building $v from the Go module proxy" >&2
  dir=$(new_wrapper kube-apiserver); log="$cache_dir/kube-apiserver-build.log"; : >"$log"
  # k8s.io/kubernetes' go.mod: `k8s.io/<name> => ./staging/src/k8s.io/<name>` for each staging module.
  gomod=$(cd "$dir" && "${go_env[@]}" go mod download -json "k8s.io/kubernetes@$v" | awk -F'"' '$2 == "GoMod" { print $4 }')
  mapfile -t staging < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod")
  (( ${#staging[@]} > 10 )) || { echo "[envtest] found no staging modules in $gomod" >&2; return 1; }
  minor="v0.${v#v1.}"                      # v1.37.2 -> v0.37.2
  for m in "${staging[@]}"; do
    printf 'replace %s => %s %s\n' "$m" "$m" "$minor" >>"$dir/go.mod"
  done
  (cd "$dir" && quiet "$log" "${go_env[@]}" go get "k8s.io/kubernetes/cmd/kube-apiserver@$v")
  local major=1 minor_n=${v#v1.}; minor_n=${minor_n%%.*}
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor_n -X $p.gitTreeState=clean"
    ldflags+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$dir" && quiet "$log" "${go_env[@]}" go build -trimpath -ldflags "$ldflags" -o "$bin_dir/kube-apiserver.new" k8s.io/kubernetes/cmd/kube-apiserver)
  mv -f "$bin_dir/kube-apiserver.new" "$bin_dir/kube-apiserver"; built=1
  done_line kube-apiserver "$t0" "built $("$bin_dir/kube-apiserver" --version | awk '{ print $2 }')"
}

command -v go >/dev/null || [[ -x "$bin_dir/etcd" && -x "$bin_dir/kube-apiserver" ]] \
  || { echo "[envtest] go is required to build kube-apiserver and etcd" >&2; exit 1; }
mkdir -p "$bin_dir" "$src_dir"
t_all=$(now_us)
build_etcd
build_kube_apiserver
if (( built || ! quiet )); then done_line total "$t_all" "kube-apiserver $DOCFLOW_KUBE_VERSION, etcd $DOCFLOW_ETCD_VERSION"; fi
