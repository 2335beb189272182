#!/usr/bin/env bash
# Builds a real Kubernetes API server for tests (envtest style: kube-apiserver + etcd, no kubelet)
# from the Go module proxy, idempotently, into $DOCFLOW_CACHE_DIR/bin (default ~/.cache/docflow/bin):
#
#   bash scripts/install-envtest.sh            build what is missing or at another version
#   bash scripts/install-envtest.sh --check    exit 1 (with a message) unless both are present
#   bash scripts/install-envtest.sh --quiet    print only what it builds (scripts/bootstrap.sh)
#   bash scripts/install-envtest.sh --cluster  also the node and the add-ons of scripts/cluster.sh:
#       kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl (same wrapper module and
#       version as kube-apiserver), coredns, metrics-server, traefik, a pause binary, and
#       kube-network-policies (the NetworkPolicy enforcer: the controller package of
#       sigs.k8s.io/kube-network-policies under the host-process main of scripts/cluster/network-policies)
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
DOCFLOW_COREDNS_VERSION=${DOCFLOW_COREDNS_VERSION:-v1.15.0}
# v0.9.1 needs a newer Go than the machine's.
DOCFLOW_METRICS_SERVER_VERSION=${DOCFLOW_METRICS_SERVER_VERSION:-v0.9.0}
# v3.7.x has a nested module the proxy cannot resolve; v3.6.12 builds in a wrapper module.
DOCFLOW_TRAEFIK_VERSION=${DOCFLOW_TRAEFIK_VERSION:-v3.6.12}
# kube-router and Calico are refused by the proxy (403) and Cilium needs eBPF: docs/deploy.md.
DOCFLOW_NETWORK_POLICIES_VERSION=${DOCFLOW_NETWORK_POLICIES_VERSION:-v0.7.0}
cache_dir=${DOCFLOW_CACHE_DIR:-$HOME/.cache/docflow}
bin_dir="$cache_dir/bin"
src_dir="$cache_dir/envtest-src"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DOCFLOW_LOG_TAG=envtest DOCFLOW_LOG_NAME_WIDTH=15 DOCFLOW_LOG_MESSAGE_WIDTH=40

check_only=0 quiet=0 built=0 cluster=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --quiet) quiet=1 ;;
    --cluster) cluster=1 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "install-envtest.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

kube_node_bins=(kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
cluster_bins=("${kube_node_bins[@]}" coredns metrics-server traefik pause kube-network-policies)

if (( check_only )); then
  want=(kube-apiserver etcd)
  (( cluster )) && want+=("${cluster_bins[@]}")
  docflow_check_present scripts/install-envtest.sh "$bin_dir" "${want[@]}"
  exit 0
fi

build_etcd() {
  local t0 dir log
  t0=$(docflow_now_us)
  if docflow_up_to_date "$bin_dir/etcd" go.etcd.io/etcd/server/v3 "$DOCFLOW_ETCD_VERSION"; then
    (( quiet )) || docflow_done etcd "$t0" "ok $DOCFLOW_ETCD_VERSION"; return 0
  fi
  echo "[envtest] etcd: building $DOCFLOW_ETCD_VERSION from the Go module proxy" >&2
  dir=$(docflow_new_wrapper "$src_dir/etcd"); log="$cache_dir/etcd-build.log"; : >"$log"
  # server/v3's own requirements name the matching api/client/pkg modules: no pins needed.
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go get "go.etcd.io/etcd/server/v3@$DOCFLOW_ETCD_VERSION")
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd.new" go.etcd.io/etcd/server/v3)
  mv -f "$bin_dir/etcd.new" "$bin_dir/etcd"; built=1
  docflow_done etcd "$t0" "built $("$bin_dir/etcd" --version | awk 'NR == 1 { print $3 }')"
}

# A wrapper module for k8s.io/kubernetes $DOCFLOW_KUBE_VERSION: every staging module pinned to the
# matching v0.x release.
kube_wrapper() { # name
  local dir gomod minor staging=() m v=$DOCFLOW_KUBE_VERSION
  dir=$(docflow_new_wrapper "$src_dir/$1")
  # k8s.io/kubernetes' go.mod: `k8s.io/<name> => ./staging/src/k8s.io/<name>` for each staging module.
  gomod=$(cd "$dir" && "${docflow_go_env[@]}" go mod download -json "k8s.io/kubernetes@$v" | awk -F'"' '$2 == "GoMod" { print $4 }')
  mapfile -t staging < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$gomod")
  (( ${#staging[@]} > 10 )) || { echo "[envtest] found no staging modules in $gomod" >&2; return 1; }
  minor="v0.${v#v1.}"                      # v1.37.2 -> v0.37.2
  for m in "${staging[@]}"; do
    printf 'replace %s => %s %s\n' "$m" "$m" "$minor" >>"$dir/go.mod"
  done
  printf '%s\n' "$dir"
}

# build_kube NAME...: the Kubernetes commands k8s.io/kubernetes/cmd/NAME that are missing or at
# another version, in one wrapper module and one `go build` (they share most of their packages).
build_kube() {
  local t0 dir log name todo=() pkgs=() v=$DOCFLOW_KUBE_VERSION wrapper
  t0=$(docflow_now_us)
  for name in "$@"; do
    docflow_up_to_date "$bin_dir/$name" k8s.io/kubernetes "$v" || todo+=("$name")
  done
  if (( ${#todo[@]} == 0 )); then
    (( quiet )) || docflow_done "$1" "$t0" "ok $v ($*)"; return 0
  fi
  echo "[envtest] ${todo[*]}: building $v from the Go module proxy" >&2
  wrapper=${todo[0]}
  (( ${#todo[@]} > 1 )) && wrapper=kubernetes
  log="$cache_dir/$wrapper-build.log"; : >"$log"
  dir=$(kube_wrapper "$wrapper")
  for name in "${todo[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go get "${pkgs[@]/%/@$v}")
  local major=1 minor_n=${v#v1.}; minor_n=${minor_n%%.*}
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor_n -X $p.gitTreeState=clean"
    ldflags+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  rm -rf "$dir/out"; mkdir -p "$dir/out"
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go build -trimpath -ldflags "$ldflags" -o "$dir/out/" "${pkgs[@]}")
  for name in "${todo[@]}"; do mv -f "$dir/out/$name" "$bin_dir/$name"; done
  built=1
  docflow_done "$wrapper" "$t0" "built $v (${todo[*]})"
}

# build_go NAME MODULE VERSION PACKAGE [GO.MOD LINE...]: a Go command from a module of its own,
# through a wrapper module that repeats the module's replace and exclude directives (a bare
# `go install pkg@version` refuses a module that has replaces).
build_go() {
  local name=$1 mod=$2 v=$3 pkg=$4 t0 dir log r; shift 4
  t0=$(docflow_now_us)
  if docflow_up_to_date "$bin_dir/$name" "$mod" "$v"; then
    (( quiet )) || docflow_done "$name" "$t0" "ok $v"; return 0
  fi
  echo "[envtest] $name: building $v from the Go module proxy" >&2
  dir=$(docflow_new_wrapper "$src_dir/$name"); log="$cache_dir/$name-build.log"; : >"$log"
  for r in "$@"; do printf '%s\n' "$r" >>"$dir/go.mod"; done
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go get "$pkg@$v")
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go build -trimpath -ldflags "-s -w" -o "$bin_dir/$name.new" "$pkg")
  mv -f "$bin_dir/$name.new" "$bin_dir/$name"; built=1
  docflow_done "$name" "$t0" "built $v"
}

# The pause binary the pod sandboxes run (containerd's sandbox_image): scripts/cluster/pause.
build_pause() {
  local t0 src
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cluster/pause"
  t0=$(docflow_now_us)
  if [[ -x "$bin_dir/pause" && "$bin_dir/pause" -nt "$src/main.go" ]]; then
    (( quiet )) || docflow_done pause "$t0" "ok"; return 0
  fi
  : >"$cache_dir/pause-build.log"
  (cd "$src" && docflow_quiet "$cache_dir/pause-build.log" "${docflow_go_env[@]}" go build -trimpath -ldflags "-s -w" -o "$bin_dir/pause" .)
  built=1
  docflow_done pause "$t0" "built"
}

# The NetworkPolicy enforcer (scripts/cluster/network-policies): SIG Network's controller package
# from sigs.k8s.io/kube-network-policies (no replaces) under a main of our own, since upstream's
# command runs only in a pod. Rebuilt when the version or that main changes.
build_network_policies() {
  local name=kube-network-policies mod=sigs.k8s.io/kube-network-policies v=$DOCFLOW_NETWORK_POLICIES_VERSION t0 dir log
  local src
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cluster/network-policies"
  t0=$(docflow_now_us)
  if docflow_up_to_date "$bin_dir/$name" "$mod" "$v" && [[ "$bin_dir/$name" -nt "$src/main.go" ]]; then
    (( quiet )) || docflow_done "$name" "$t0" "ok $v"; return 0
  fi
  echo "[envtest] $name: building $v from the Go module proxy" >&2
  dir=$(docflow_new_wrapper "$src_dir/$name"); log="$cache_dir/$name-build.log"; : >"$log"
  cp "$src/main.go" "$dir/main.go"
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go get "$mod@$v")
  (cd "$dir" && docflow_quiet "$log" "${docflow_go_env[@]}" go build -trimpath -ldflags "-s -w" -o "$bin_dir/$name.new" .)
  mv -f "$bin_dir/$name.new" "$bin_dir/$name"; built=1
  docflow_done "$name" "$t0" "built $v"
}

build_cluster() {
  build_kube "${kube_node_bins[@]}"
  build_go coredns github.com/coredns/coredns "$DOCFLOW_COREDNS_VERSION" github.com/coredns/coredns
  build_go metrics-server sigs.k8s.io/metrics-server "$DOCFLOW_METRICS_SERVER_VERSION" sigs.k8s.io/metrics-server/cmd/metrics-server
  # Traefik's own go.mod replaces three modules with forks; a wrapper must repeat them.
  build_go traefik github.com/traefik/traefik/v3 "$DOCFLOW_TRAEFIK_VERSION" github.com/traefik/traefik/v3/cmd/traefik \
    "replace github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e" \
    "replace github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59" \
    "replace github.com/mailgun/minheap => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595" \
    "exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible"
  build_pause
  build_network_policies
}

command -v go >/dev/null || [[ -x "$bin_dir/etcd" && -x "$bin_dir/kube-apiserver" ]] \
  || docflow_die "go is required to build kube-apiserver and etcd"
mkdir -p "$bin_dir" "$src_dir"
# One build at a time per cache (bootstrap, .ci/run and scripts/cluster.sh may all call this).
exec 9>"$cache_dir/.install-envtest.lock"
flock 9
t_all=$(docflow_now_us)
build_etcd
build_kube kube-apiserver
(( cluster )) && build_cluster
if (( built || ! quiet )); then docflow_done total "$t_all" "Kubernetes $DOCFLOW_KUBE_VERSION, etcd $DOCFLOW_ETCD_VERSION"; fi
