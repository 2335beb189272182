#!/usr/bin/env bash
# Entry point of `npm start` / `npm test` (see package.json):
#
#   bash scripts/run.sh start [args]     -> node scripts/stack.ts [args]   (local stack)
#   bash scripts/run.sh test [args]      -> node scripts/test.ts [args]    (typecheck, lint, services, vitest)
#   bash scripts/run.sh <cmd> [args]     -> <cmd> [args] with the prepared PATH (Node 24 first, then
#                                           node_modules/.bin), e.g. `bash scripts/run.sh vitest run --project unit`
#
# Before that it sources scripts/bootstrap.sh (Node 24, Debian packages, versitygw, helm, the
# Kubernetes binaries; for `start` only what the local stack runs: see there, and for
# DOCFLOW_BOOTSTRAP_SKIP_APT) and runs `npm ci` when node_modules is missing or package-lock.json is
# newer than node_modules/.package-lock.json. Runs in the repository root, like npm scripts.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# `npm start` installs only what the local stack runs (no helm, no Kubernetes binaries, no
# Chromium); everything else installs everything.
if [[ "${1:-}" == start ]]; then export DOCFLOW_BOOTSTRAP_FOR=start; fi
# shellcheck source=scripts/bootstrap.sh
source "$root/scripts/bootstrap.sh"

# (docflow_now_us and docflow_done: scripts/lib.sh, which bootstrap.sh sources.)
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  t0=$(docflow_now_us)
  echo "[run] npm ci (node_modules missing or older than package-lock.json)" >&2
  npm ci --no-audit --no-fund --loglevel=error
  docflow_done "npm ci" "$t0" "done"
fi

# Local bins (tsc, vitest, eslint...) right after Node 24, which stays first.
PATH="${PATH%%:*}:$root/node_modules/.bin:${PATH#*:}"
export PATH

if (( $# == 0 )); then
  sed -n '2,8p' "$0" >&2
  exit 2
fi

cmd=$1
shift
case "$cmd" in
  start) exec node "$root/scripts/stack.ts" "$@" ;;
  test) exec node "$root/scripts/test.ts" "$@" ;;
  *) exec "$cmd" "$@" ;;
esac
