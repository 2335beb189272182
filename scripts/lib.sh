# Shell helpers shared by the scripts in this directory: one line per phase with its duration,
# commands whose output goes to a log that is shown only when they fail, and the Go builds of
# scripts/install-envtest.sh and scripts/install-skaffold.sh. Sourced, never executed:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   DOCFLOW_LOG_TAG=cluster DOCFLOW_LOG_NAME_WIDTH=16 DOCFLOW_LOG_MESSAGE_WIDTH=50
#
# A user's interactive shell sources it too (through `source scripts/bootstrap.sh`): so it only
# defines names prefixed docflow_ / DOCFLOW_, sets no shell option, and runs nothing.
# shellcheck shell=bash

# --- logging ---------------------------------------------------------------------------------------
# Every line a script prints starts with [$DOCFLOW_LOG_TAG] and goes to stderr (stdout is for what
# callers read: exports, KEY=value lines). Phase lines are
#   [TAG] NAME MESSAGE (S.mmms)
# with NAME padded to $DOCFLOW_LOG_NAME_WIDTH and MESSAGE to $DOCFLOW_LOG_MESSAGE_WIDTH columns,
# so that a script's lines align.

# The wall clock in microseconds.
docflow_now_us() { printf '%s\n' "${EPOCHREALTIME/[,.]/}"; }

# One line for a phase that started at START-US (from docflow_now_us), with its duration.
docflow_done() { # name start-us message
  local dur=$(( (${EPOCHREALTIME/[,.]/} - $2) / 1000 ))
  printf '[%s] %-*s %-*s (%d.%03ds)\n' "${DOCFLOW_LOG_TAG:-docflow}" \
    "${DOCFLOW_LOG_NAME_WIDTH:-15}" "$1" "${DOCFLOW_LOG_MESSAGE_WIDTH:-40}" "$3" \
    $((dur / 1000)) $((dur % 1000)) >&2
}

# Runs a command with its output appended to LOG; when it fails, prints the command and the end
# of LOG, and fails. Appends, so that the commands of one step share a log: a step that reruns
# starts it empty (`: >"$log"`), or a failure would show lines of an earlier run.
docflow_quiet() { # log cmd...
  local log=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    printf '[%s] FAILED: %s (log: %s)\n' "${DOCFLOW_LOG_TAG:-docflow}" "$*" "$log" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

# Prints the message and exits the script (scripts only: never called from a sourced context).
docflow_die() { # message...
  printf '[%s] %s\n' "${DOCFLOW_LOG_TAG:-docflow}" "$*" >&2
  exit 1
}

# --- Go builds ---------------------------------------------------------------------------------------
# Binaries built from the Go module proxy into ~/.cache/docflow/bin, each from a small wrapper
# module (scripts/install-envtest.sh and scripts/install-skaffold.sh say why).

# The version of module MODULE that binary BINARY was built with, as a dependency or as its main
# module; "" when unknown (no such binary, or no Go), which callers check: it does not fail.
docflow_dep_version() { # binary module
  { go version -m "$1" 2>/dev/null || true; } | awk -v m="$2" '($1 == "dep" || $1 == "mod") && $2 == m { print $3 }'
}

# Whether BINARY was built from MODULE at VERSION (present without Go to check: kept).
docflow_up_to_date() { # binary module version
  [[ -x "$1" ]] || return 1
  if ! command -v go >/dev/null; then return 0; fi
  [[ "$(docflow_dep_version "$1" "$2")" == "$3" ]]
}

# An empty wrapper module in DIR, printed (recreated each build, so a version change starts clean).
docflow_new_wrapper() { # dir
  local dir=$1
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module docflow.local/envtest/%s\n\ngo 1.26\n' "${dir##*/}" >"$dir/go.mod"
  printf '%s\n' "$dir"
}

# The Go environment of every build: static binaries, no workspace, the module proxy.
# shellcheck disable=SC2034 # used by the scripts that source this file
docflow_go_env=(env "GOFLAGS=-mod=mod -buildvcs=false" GOWORK=off CGO_ENABLED=0)

# For --check: fails, naming what is missing and the script that builds it, unless every NAME is
# an executable in BIN-DIR.
docflow_check_present() { # script bin-dir name...
  local script=$1 dir=$2 name missing=()
  shift 2
  for name in "$@"; do [[ -x "$dir/$name" ]] || missing+=("$dir/$name"); done
  if (( ${#missing[@]} )); then
    printf '[%s] missing: %s (run: bash %s)\n' "${DOCFLOW_LOG_TAG:-docflow}" "${missing[*]}" "$script" >&2
    return 1
  fi
}
