# Helpers of the scripts that build Go binaries from the Go module proxy into ~/.cache/docflow/bin
# (scripts/install-envtest.sh, scripts/install-skaffold.sh). Sourced; the caller sets:
#   LOG_TAG   prefix of every line it prints, e.g. envtest
#   bin_dir   where the binaries go
#   src_dir   where the wrapper modules are made
# shellcheck shell=bash

now_us() { printf '%s\n' "${EPOCHREALTIME/[,.]/}"; }

# One line per step with its duration, on stderr.
done_line() { # name start-us message
  local dur=$(( ($(now_us) - $2) / 1000 ))
  printf '[%s] %-15s %-40s (%d.%03ds)\n' "$LOG_TAG" "$1" "$3" $((dur / 1000)) $((dur % 1000)) >&2
}

# Runs a command with its output appended to a log, shown (its end) only when it fails.
quiet() { # log cmd...
  local log=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    echo "[$LOG_TAG] FAILED: $* (log: $log)" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

# The version of module $2 that binary $1 was built with ("" when unknown).
dep_version() { go version -m "$1" 2>/dev/null | awk -v m="$2" '($1 == "dep" || $1 == "mod") && $2 == m { print $3 }'; }

# Whether $bin_dir/NAME was built from MODULE at VERSION (present without Go to check: kept).
up_to_date() { # name module version
  local bin="$bin_dir/$1"
  [[ -x "$bin" ]] || return 1
  if ! command -v go >/dev/null; then return 0; fi
  [[ "$(dep_version "$bin" "$2")" == "$3" ]]
}

# A wrapper module in $src_dir/NAME (recreated each build, so a version change starts clean).
new_wrapper() { # name
  local dir="$src_dir/$1"
  rm -rf "$dir"; mkdir -p "$dir"
  printf 'module docflow.local/envtest/%s\n\ngo 1.26\n' "$1" >"$dir/go.mod"
  printf '%s\n' "$dir"
}

# The Go environment of every build: static binaries, no workspace, the module proxy.
go_env=(env "GOFLAGS=-mod=mod -buildvcs=false" GOWORK=off CGO_ENABLED=0)

# --check: fails (with the script to run) unless every named binary is in $bin_dir.
check_present() { # script binary...
  local script=$1 b missing=()
  shift
  for b in "$@"; do [[ -x "$bin_dir/$b" ]] || missing+=("$bin_dir/$b"); done
  if (( ${#missing[@]} )); then
    echo "[$LOG_TAG] missing: ${missing[*]} (run: bash $script)" >&2
    return 1
  fi
}
