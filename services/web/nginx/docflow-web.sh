#!/bin/sh
# docflow web: nginx serving the built single-page app (the `dist` folder beside this one). The web
# image's command and its preStop hook.
#
#   docflow-web.sh                    check the environment, render nginx.conf.template and
#                                     security-headers.conf.template into the runtime directory,
#                                     then exec nginx in the foreground (PID 1 in the image)
#   docflow-web.sh drain READY DRAIN  the preStop hook: the pod stays ready READY seconds (its
#                                     endpoint removal reaches every load balancer), then /readyz
#                                     answers 503 for DRAIN seconds while nginx still serves. When
#                                     the hook returns, the kubelet sends the image's STOPSIGNAL,
#                                     SIGQUIT: nginx stops accepting, requests in flight get
#                                     DOCFLOW_WEB_SHUTDOWN_TIMEOUT_MS.
#
# Environment (all optional):
#   DOCFLOW_WEB_HOST (0.0.0.0), DOCFLOW_WEB_PORT (8080),
#   DOCFLOW_WEB_DIST_DIR (the `dist` folder beside this script's folder),
#   DOCFLOW_WEB_API_ORIGIN (the API's origin when it is not this one: added to connect-src),
#   DOCFLOW_WEB_REALTIME_ORIGIN (the NATS WebSocket origin, `wss://...`: added to connect-src),
#   DOCFLOW_WEB_KEEP_ALIVE_TIMEOUT_MS (65000; above the load balancer's idle timeout),
#   DOCFLOW_WEB_HEADERS_TIMEOUT_MS (66000; a request's header must arrive within this, also on a
#     new connection: above the load balancer's idle timeout as well),
#   DOCFLOW_WEB_SHUTDOWN_TIMEOUT_MS (10000; after SIGQUIT, requests in flight get this long),
#   DOCFLOW_WEB_RUNTIME_DIR (/tmp/docflow-web: the rendered configuration, nginx's pid and
#     temporary files, the draining mark; the only place written).
# An invalid variable stops the start with a message that names it (exit 1).
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd -P)
runtime_dir=${DOCFLOW_WEB_RUNTIME_DIR:-/tmp/docflow-web}

# The contents of a JSON string: control characters become spaces, newlines \n.
json_string() {
  printf '%s' "$1" | tr '\001-\011\013-\037' ' ' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }'
}

# log LEVEL MESSAGE [FIELDS]: one JSON line on stdout, as the other services log. FIELDS is JSON
# to append (`,"key":value`).
log() {
  printf '{"level":"%s","time":"%s","service":"web","msg":"%s"%s}\n' "$1" "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$(json_string "$2")" "${3:-}"
}

problems=''
problem() {
  problems="$problems
  $1"
}

# env_value NAME: $raw is the value of the variable NAME, empty when unset.
env_value() {
  eval "raw=\${$1:-}"
}

# read_int NAME DEFAULT MIN MAX: $value is $NAME, an integer from MIN to MAX, or DEFAULT when unset
# or empty.
read_int() {
  env_value "$1"
  value=$2
  [ -n "$raw" ] || return 0
  case $raw in
    *[!0-9]*) ;;
    *)
      digits=$(printf '%s' "$raw" | sed 's/^0*\([0-9]\)/\1/')
      if [ "${#digits}" -le 9 ] && [ "$digits" -ge "$3" ] && [ "$digits" -le "$4" ]; then
        value=$digits
        return 0
      fi
      ;;
  esac
  problem "$1: must be an integer from $3 to $4 (got \"$raw\")"
}

# read_origin NAME "SCHEME...": $value is the origin (scheme://host[:port], lower case, without the
# scheme's default port) of the URL in $NAME, or empty when unset or empty. Path, query and
# credentials are dropped; anything else is refused, so that nothing but an origin reaches the CSP.
read_origin() {
  env_value "$1"
  value=''
  [ -n "$raw" ] || return 0
  o_parsed=''
  case $raw in
    *[![:graph:]]*) ;;
    *) o_parsed=$(printf '%s\n' "$raw" | sed -n -E 's!^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#@]*@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}))?([/?#].*)?$!\1 \3 \5!p' | tr '[:upper:]' '[:lower:]') ;;
  esac
  o_scheme=${o_parsed%% *}
  o_rest=${o_parsed#* }
  o_host=${o_rest%% *}
  o_port=${o_rest#* }
  case "$o_scheme:$o_port" in http:80 | ws:80 | https:443 | wss:443) o_port='' ;; esac
  case " $2 " in
    *" $o_scheme "*)
      if [ -n "$o_scheme" ] && [ -n "$o_host" ] && { [ -z "$o_port" ] || [ "$o_port" -le 65535 ]; }; then
        value="$o_scheme://$o_host${o_port:+:$o_port}"
        return 0
      fi
      ;;
  esac
  problem "$1: must be a URL with $(printf '%s:' "$2" | sed 's/ /: or /g') (got \"$raw\")"
}

# read_path NAME DEFAULT: $value is the absolute path in $NAME (or DEFAULT), of characters that need
# no quoting in nginx's configuration.
read_path() {
  env_value "$1"
  value=${raw:-$2}
  case $value in
    /*[!A-Za-z0-9._/+@-]*) ;;
    /*) return 0 ;;
  esac
  problem "$1: must be an absolute path of letters, digits and ._/+@- (got \"$value\")"
}

start() {
  host=${DOCFLOW_WEB_HOST:-0.0.0.0}
  case $host in
    *[!A-Za-z0-9.:-]*) problem "DOCFLOW_WEB_HOST: must be an IP address or a host name (got \"$host\")" ;;
    *:*) host="[$host]" ;;
  esac
  read_int DOCFLOW_WEB_PORT 8080 1 65535
  port=$value
  read_path DOCFLOW_WEB_DIST_DIR "$here/../dist"
  dist_dir=$value
  read_origin DOCFLOW_WEB_API_ORIGIN "http https"
  api_origin=$value
  read_origin DOCFLOW_WEB_REALTIME_ORIGIN "ws wss"
  realtime_origin=$value
  read_int DOCFLOW_WEB_KEEP_ALIVE_TIMEOUT_MS 65000 1 3600000
  keep_alive_ms=$value
  read_int DOCFLOW_WEB_HEADERS_TIMEOUT_MS 66000 1 3600000
  headers_ms=$value
  read_int DOCFLOW_WEB_SHUTDOWN_TIMEOUT_MS 10000 1 3600000
  shutdown_ms=$value
  read_path DOCFLOW_WEB_RUNTIME_DIR /tmp/docflow-web
  runtime_dir=$value
  if [ -z "$problems" ]; then
    if [ -f "$dist_dir/index.html" ]; then
      dist_dir=$(CDPATH='' cd -- "$dist_dir" && pwd)
    else
      problem "DOCFLOW_WEB_DIST_DIR: $dist_dir has no index.html: build the app first (npm run build -w services/web)"
    fi
  fi
  if [ -n "$problems" ]; then
    log error "web failed to start" ",\"err\":\"$(json_string "invalid configuration:$problems")\""
    exit 1
  fi

  connect="'self'${api_origin:+ $api_origin}${realtime_origin:+ $realtime_origin}"
  csp="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src $connect; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"

  mkdir -p "$runtime_dir"
  # A restarted container keeps its /tmp (the pod's emptyDir), and starts ready again.
  rm -f "$runtime_dir/draining"
  # shellcheck disable=SC2016 # envsubst's list of the variables to replace, not an expansion
  LISTEN="$host:$port" DIST_DIR="$dist_dir" RUNTIME_DIR="$runtime_dir" KEEP_ALIVE_TIMEOUT_MS="$keep_alive_ms" HEADERS_TIMEOUT_MS="$headers_ms" SHUTDOWN_TIMEOUT_MS="$shutdown_ms" \
    envsubst '${LISTEN} ${DIST_DIR} ${RUNTIME_DIR} ${KEEP_ALIVE_TIMEOUT_MS} ${HEADERS_TIMEOUT_MS} ${SHUTDOWN_TIMEOUT_MS}' <"$here/nginx.conf.template" >"$runtime_dir/nginx.conf"
  # shellcheck disable=SC2016
  CSP="$csp" envsubst '${CSP}' <"$here/security-headers.conf.template" >"$runtime_dir/security-headers.conf"

  log info "starting nginx on http://$host:$port" ",\"port\":$port,\"dist\":\"$(json_string "$dist_dir")\",\"csp\":\"$(json_string "$csp")\""
  exec nginx -e stderr -p "$runtime_dir/" -c "$runtime_dir/nginx.conf"
}

drain() {
  if [ $# -ne 2 ] || ! is_seconds "$1" || ! is_seconds "$2"; then
    echo "usage: $0 drain READY_SECONDS DRAIN_SECONDS" >&2
    exit 2
  fi
  sleep "$1"
  # From now on /readyz answers 503 (nginx.conf.template); everything else is still served.
  : >"$runtime_dir/draining"
  log info "draining: readiness is now false" ",\"drainSeconds\":$2"
  sleep "$2"
}

is_seconds() {
  case $1 in '' | *[!0-9]*) return 1 ;; esac
}

case "${1:-}" in
  '') start ;;
  drain) shift && drain "$@" ;;
  *)
    echo "usage: $0 [drain READY_SECONDS DRAIN_SECONDS]" >&2
    exit 2
    ;;
esac
