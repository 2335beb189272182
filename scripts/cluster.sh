#!/usr/bin/env bash
# A single-node Kubernetes cluster on this machine, from the package registries only, and docflow
# deployed on it (docs/deploy.md, "A local cluster"). Idempotent; every phase prints its duration.
#
#   bash scripts/cluster.sh up       start the cluster (builds what is missing; prints the KUBECONFIG export)
#   bash scripts/cluster.sh deploy   build docflow's images, load them, install the chart with the
#                                    evaluation values; wait for every pod; print the URL and a token
#   bash scripts/cluster.sh status   what runs, the node and the pods
#   bash scripts/cluster.sh env      print the exports for kubectl and helm (KUBECONFIG, PATH)
#   bash scripts/cluster.sh test-env print what the cluster tests read, KEY=value lines (DOCFLOW_TEST_KUBECONFIG...)
#   bash scripts/cluster.sh registry start a registry on 127.0.0.1:5000 for Skaffold (and a podman API
#                                    socket that pushes to it); print the exports for
#                                    `skaffold run -p evaluation,cluster` (docs/deploy.md)
#   bash scripts/cluster.sh down     stop everything `up` started and remove its state
#
# What `up` runs, each a host process with a log in $STATE/logs:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
#     (k8s.io/kubernetes $DOCFLOW_KUBE_VERSION, built by scripts/install-envtest.sh --cluster)
#   containerd + runc + the CNI plugins (Debian's packages), on a bridge of its own
#   kube-network-policies, which enforces NetworkPolicies (SIG Network's controller, built by the
#     same script; the bridge CNI enforces none): iptables hand it each new connection from or to
#     a pod (NFQUEUE), and it accepts or drops it by the policies of both ends
# and, as pods in kube-system: CoreDNS, metrics-server (so that an HPA acts) and Traefik (the
# ingress controller, on the node's network at 127.0.0.1:$DOCFLOW_CLUSTER_HTTP_PORT).
# No registry can be reached here: every image is built locally (podman) and imported into
# containerd; the pods use imagePullPolicy IfNotPresent, and the sandbox image is a local pause.
#
# The node's addresses stay on this machine: the pods' bridge docflow0 is 10.244.0.1/24 (the node's
# InternalIP, where the API server listens), Services are 10.96.0.0/16, DNS is 10.96.0.10.
#
# Env: DOCFLOW_CACHE_DIR (default ~/.cache/docflow; the cluster's state is $DOCFLOW_CACHE_DIR/cluster),
#      DOCFLOW_CLUSTER_HTTP_PORT (ingress port on 127.0.0.1, default 8480),
#      DOCFLOW_CLUSTER_NAMESPACE (docflow's namespace, default docflow),
#      DOCFLOW_CLUSTER_VALUES (extra values files for `deploy`, space-separated),
#      DOCFLOW_CLUSTER_REGISTRY_PORT (the registry of `registry`, on 127.0.0.1, default 5000).
# Needs root (containerd, kubelet, iptables), as CI and the sessions have.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DOCFLOW_CACHE_DIR:-$HOME/.cache/docflow}"
BIN="$CACHE/bin"
STATE="$CACHE/cluster"
PKI="$STATE/pki"
LOGS="$STATE/logs"
PIDS="$STATE/pids"
RUNDIR=/run/docflow-cluster
CONTAINERD_SOCK="$RUNDIR/containerd/containerd.sock"
KUBECONFIG_FILE="$STATE/admin.kubeconfig"
NODE_NAME=docflow
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_IP=10.96.0.10
BRIDGE=docflow0
ETCD_PORT=23790
API_PORT=6443
HTTP_PORT="${DOCFLOW_CLUSTER_HTTP_PORT:-8480}"
NAMESPACE="${DOCFLOW_CLUSTER_NAMESPACE:-docflow}"
RELEASE=docflow
ORIG_PATH=$PATH
ADDON_TAG=docflow
IMAGE_TAG="${DOCFLOW_IMAGE_TAG:-dev}"
APT_PACKAGES=(containerd runc containernetworking-plugins conntrack iptables)
# The kubelet's container manager sets these machine-wide (protectKernelDefaults: false); `down`
# puts back the values `up` found.
KERNEL_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
# NetworkPolicy enforcement: the queue the node's rules hand new connections to, and their chain.
NETPOL_QUEUE=100
NETPOL_CHAIN=DOCFLOW-NETWORK-POLICIES

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
DOCFLOW_LOG_TAG=cluster DOCFLOW_LOG_NAME_WIDTH=16 DOCFLOW_LOG_MESSAGE_WIDTH=50
t_start=$(docflow_now_us)
kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# --- processes ------------------------------------------------------------------------------------

# write_config FILE < content: replaces FILE only when the content differs (kube-proxy exits when
# its configuration file changes under it, and an unchanged file keeps `up` a no-op).
write_config() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

running() { # name
  local pid
  pid=$(cat "$PIDS/$1" 2>/dev/null) || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# start NAME CMD...: runs CMD detached (its own session, so a terminal's signals do not reach it),
# logging to $LOGS/NAME.log, unless it already runs.
start() {
  local name=$1; shift
  running "$name" && return 0
  mkdir -p "$LOGS" "$PIDS"
  (cd / && exec setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null) &
  echo $! >"$PIDS/$name"
}

# wait_for NAME SECONDS CMD...: until CMD succeeds; fails with NAME's log when it does not, or dies.
wait_for() {
  local name=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -f "$PIDS/$name" ]] && ! running "$name"; then
      echo "[cluster] $name exited; the end of $LOGS/$name.log:" >&2
      tail -n 30 "$LOGS/$name.log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "[cluster] $name not ready after ${secs}s; the end of $LOGS/$name.log:" >&2
  tail -n 30 "$LOGS/$name.log" >&2 || true
  return 1
}

stop() { # name [seconds]
  local name=$1 secs=${2:-20} pid i
  pid=$(cat "$PIDS/$name" 2>/dev/null) || return 0
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/$name"
}

# --- prerequisites --------------------------------------------------------------------------------

ensure_packages() {
  local t0 missing=() pkg
  t0=$(docflow_now_us)
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    mkdir -p "$LOGS"
    docflow_quiet "$LOGS/apt.log" apt-get -o DPkg::Lock::Timeout=600 update
    docflow_quiet "$LOGS/apt.log" env DEBIAN_FRONTEND=noninteractive \
      apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" </dev/null
  fi
  docflow_done packages "$t0" "$( ((${#missing[@]})) && echo "installed ${missing[*]}" || echo "ok ${APT_PACKAGES[*]}")"
}

ensure_binaries() {
  local t0
  t0=$(docflow_now_us)
  bash "$ROOT/scripts/install-envtest.sh" --cluster --quiet
  docflow_done binaries "$t0" "ok ($(ls "$BIN" | tr '\n' ' '))"
}

# --- certificates and kubeconfigs ------------------------------------------------------------------

# cert NAME CN [O] [SANS]: a key and a certificate signed by the cluster CA (or by CA_NAME).
cert() {
  local name=$1 cn=$2 org=${3:-} sans=${4:-} ca=${CA_NAME:-ca} subj ext
  [[ -s "$PKI/$name.crt" ]] && return 0
  subj="/CN=$cn"; [[ -n "$org" ]] && subj="/O=$org$subj"
  ext="$PKI/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

ca() { # name cn
  [[ -s "$PKI/$1.crt" ]] && return 0
  openssl genrsa -out "$PKI/$1.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 3650 -sha256 -out "$PKI/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}

kubeconfig() { # name user-cert
  local file="$STATE/$1.kubeconfig"
  [[ -s "$file" ]] && return 0
  kubectl config set-cluster docflow --server "https://$NODE_IP:$API_PORT" --certificate-authority "$PKI/ca.crt" --embed-certs --kubeconfig "$file" >/dev/null
  kubectl config set-credentials "$1" --client-certificate "$PKI/$2.crt" --client-key "$PKI/$2.key" --embed-certs --kubeconfig "$file" >/dev/null
  kubectl config set-context docflow --cluster docflow --user "$1" --namespace "$NAMESPACE" --kubeconfig "$file" >/dev/null
  kubectl config use-context docflow --kubeconfig "$file" >/dev/null
}

ensure_pki() {
  local t0
  t0=$(docflow_now_us)
  mkdir -p "$PKI"; chmod 700 "$PKI"
  ca ca docflow-cluster-ca
  ca front-proxy-ca docflow-front-proxy-ca
  cert apiserver kube-apiserver "" "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$API_SERVICE_IP,IP:$NODE_IP,IP:127.0.0.1"
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert admin docflow-admin system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kube-proxy system:kube-proxy
  cert network-policies system:kube-network-policies
  cert kubelet "system:node:$NODE_NAME" system:nodes "DNS:$NODE_NAME,IP:$NODE_IP"
  CA_NAME=front-proxy-ca cert front-proxy-client front-proxy-client
  [[ -s "$PKI/sa.key" ]] || { openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null; openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; }
  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kube-proxy kube-proxy
  kubeconfig network-policies network-policies
  kubeconfig kubelet kubelet
  docflow_done pki "$t0" "ok $PKI"
}

# --- the node's network ------------------------------------------------------------------------

ensure_network() {
  local t0
  t0=$(docflow_now_us)
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  # Not `ip addr show | grep -q`: under pipefail, grep leaving early can fail the pipeline (SIGPIPE)
  # and re-add an address the bridge has (after a restart of the machine's processes, it does).
  local addrs
  addrs=$(ip -4 -o addr show dev "$BRIDGE")
  [[ "$addrs" == *"inet $NODE_IP/"* ]] || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Service traffic between two pods on the bridge passes iptables (kube-proxy's DNAT), and the
  # node routes the pods' packets.
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.ipv4.ip_forward=1
  mkdir -p "$STATE/cni/net.d"
  write_config "$STATE/cni/net.d/10-docflow.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "docflow",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$NODE_IP" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  docflow_done network "$t0" "ok $BRIDGE $NODE_IP/24, pods $POD_CIDR"
}

# --- containerd ------------------------------------------------------------------------------------

ensure_containerd() {
  local t0
  t0=$(docflow_now_us)
  mkdir -p "$RUNDIR/containerd" "$STATE/containerd"
  # restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so runc cannot lower a container's
  # oom_score_adj below its own (every sandbox fails with "can't get final child's PID from pipe").
  write_config "$STATE/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUNDIR/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/docflow/pause:$ADDON_TAG"
  restrict_oom_score_adj = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  start containerd containerd --config "$STATE/containerd.toml"
  wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
  docflow_done containerd "$t0" "ok $(containerd --version | awk '{print $3}') unix://$CONTAINERD_SOCK"
}

ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# import_images IMAGE...: each podman image into containerd's k8s.io namespace, unless there with
# the same ID already.
import_images() {
  local image id have todo=()
  for image in "$@"; do
    id=$(podman image inspect --format '{{.Id}}' "$image")
    # A label records the podman image ID each import came from.
    have=$(ctr_ images ls "name==$image" 2>/dev/null | awk 'NR > 1' | grep -o "docflow.podman-id=[0-9a-f]*" | cut -d= -f2 || true)
    [[ "$have" == "$id" ]] || todo+=("$image")
  done
  ((${#todo[@]})) || return 0
  for image in "${todo[@]}"; do
    podman save --format docker-archive "$image" | ctr_ images import - >/dev/null
    id=$(podman image inspect --format '{{.Id}}' "$image")
    ctr_ images label "$image" "docflow.podman-id=$id" >/dev/null
  done
  printf '%s\n' "${todo[@]}"
}

# The add-ons' images: each a static binary on an empty image.
ensure_addon_images() {
  local t0 name ctx imported
  t0=$(docflow_now_us)
  command -v podman >/dev/null || bash "$ROOT/scripts/containers.sh" >/dev/null
  for name in pause coredns metrics-server traefik; do
    ctx="$CACHE/images/context/addon-$name"
    mkdir -p "$ctx"
    if ! cmp -s "$BIN/$name" "$ctx/$name" || ! podman image exists "localhost/docflow/$name:$ADDON_TAG"; then
      cp -f "$BIN/$name" "$ctx/$name"
      printf 'FROM scratch\nCOPY %s /%s\nUSER 65532:65532\nENTRYPOINT ["/%s"]\n' "$name" "$name" "$name" >"$ctx/Containerfile"
      docflow_quiet "$LOGS/image-$name.log" podman build --network none -f "$ctx/Containerfile" -t "localhost/docflow/$name:$ADDON_TAG" "$ctx"
    fi
  done
  imported=$(import_images localhost/docflow/{pause,coredns,metrics-server,traefik}:"$ADDON_TAG" | wc -l)
  docflow_done addon-images "$t0" "ok ($imported imported)"
}

# --- the control plane -----------------------------------------------------------------------------

ensure_etcd() {
  local t0
  t0=$(docflow_now_us)
  mkdir -p "$STATE/etcd"; chmod 700 "$STATE/etcd"
  start etcd "$BIN/etcd" --name docflow --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster docflow=http://127.0.0.1:23800 --listen-metrics-urls http://127.0.0.1:23810 \
    --unsafe-no-fsync --quota-backend-bytes 4294967296
  wait_for etcd 30 curl -fsS "http://127.0.0.1:23810/health"
  docflow_done etcd "$t0" "ok 127.0.0.1:$ETCD_PORT"
}

ensure_apiserver() {
  local t0
  t0=$(docflow_now_us)
  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --authorization-mode Node,RBAC --allow-privileged=true \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true --profiling=false
  wait_for kube-apiserver 120 kc get --raw /readyz
  docflow_done kube-apiserver "$t0" "ok https://$NODE_IP:$API_PORT"
}

ensure_controllers() {
  local t0
  t0=$(docflow_now_us)
  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=true --service-cluster-ip-range "$SERVICE_CIDR" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --horizontal-pod-autoscaler-sync-period 10s --profiling=false
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false
  wait_for kube-controller-manager 60 curl -fsSk https://127.0.0.1:10257/healthz
  wait_for kube-scheduler 60 curl -fsSk https://127.0.0.1:10259/healthz
  docflow_done controllers "$t0" "ok kube-controller-manager, kube-scheduler"
}

# --- the node --------------------------------------------------------------------------------------

save_sysctls() {
  local s
  [[ -s "$STATE/sysctls.before" ]] && return 0
  for s in "${KERNEL_SYSCTLS[@]}"; do printf '%s=%s\n' "$s" "$(sysctl -n "$s")"; done >"$STATE/sysctls.before"
}

ensure_kubelet() {
  local t0
  t0=$(docflow_now_us)
  save_sysctls
  mkdir -p "$STATE/kubelet"
  # Pods with dnsPolicy Default (CoreDNS itself) get a resolver that answers nothing off-node.
  printf 'nameserver 127.0.0.1\n' | write_config "$STATE/resolv.conf"
  write_config "$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host: cgroup v1, PID 1 is not systemd, root lacks CAP_SYS_RESOURCE (ENVIRONMENT.md).
failCgroupV1: false
cgroupDriver: cgroupfs
protectKernelDefaults: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: $STATE/resolv.conf
# No registry: an image garbage-collected could never come back.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 200Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
runtimeRequestTimeout: 10m
maxPods: 110
EOF
  start kubelet "$BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
    --root-dir "$STATE/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  wait_for kubelet 120 curl -fsS http://127.0.0.1:10248/healthz
  wait_for kubelet 120 kc get node "$NODE_NAME"
  docflow_done kubelet "$t0" "ok node $NODE_NAME"
}

ensure_kube_proxy() {
  local t0
  t0=$(docflow_now_us)
  write_config "$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $STATE/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$NODE_IP/32"]
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# Leave the machine's conntrack table size alone.
conntrack:
  maxPerCore: 0
EOF
  start kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
  wait_for kube-proxy 60 curl -fsS http://127.0.0.1:10256/healthz
  docflow_done kube-proxy "$t0" "ok iptables"
}

# --- NetworkPolicy enforcement ----------------------------------------------------------------------

# kube-network-policies (sigs.k8s.io/kube-network-policies, SIG Network's NetworkPolicy enforcer,
# under the host-process main of scripts/cluster/network-policies) judges the first packet of each
# connection in user space by the NetworkPolicies of both ends; conntrack passes the rest. Upstream
# hands it those packets with an nftables `queue` rule, which this kernel cannot load
# (CONFIG_NFT_QUEUE is not set; its controller logs "syncing nftables rules" errors for that): the
# rules below do the same with iptables' NFQUEUE target, in mangle POSTROUTING (after kube-proxy's
# DNAT, so a Service's packets show the pod they go to; before any SNAT), as its own rules would:
# established connections and the node's root processes (the kubelet's probes) pass untouched.
# --queue-bypass with --fail-open: when the enforcer is not running, packets pass unjudged rather
# than the node's pods losing their network (scenario 8 of tests/cluster fails then).
netpol_rules() {
  iptables -t mangle -S "$NETPOL_CHAIN" >/dev/null 2>&1 || iptables -t mangle -N "$NETPOL_CHAIN"
  # One atomic replacement of the chain's rules.
  iptables-restore --noflush <<EOF
*mangle
:$NETPOL_CHAIN - [0:0]
-A $NETPOL_CHAIN -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN
-A $NETPOL_CHAIN -m owner --uid-owner 0 -j RETURN
-A $NETPOL_CHAIN -s $POD_CIDR -j NFQUEUE --queue-num $NETPOL_QUEUE --queue-bypass
-A $NETPOL_CHAIN -d $POD_CIDR -j NFQUEUE --queue-num $NETPOL_QUEUE --queue-bypass
COMMIT
EOF
  iptables -t mangle -C POSTROUTING -j "$NETPOL_CHAIN" 2>/dev/null || iptables -t mangle -A POSTROUTING -j "$NETPOL_CHAIN"
}

# A process listens on the queue (nfnetlink_queue's table: queue number, the listener's port id...).
netpol_listening() { awk -v q="$NETPOL_QUEUE" '$1 == q { found = 1 } END { exit !found }' /proc/net/netfilter/nfnetlink_queue; }

ensure_network_policies() {
  local t0
  t0=$(docflow_now_us)
  start kube-network-policies "$BIN/kube-network-policies" --kubeconfig "$STATE/network-policies.kubeconfig" \
    --hostname-override "$NODE_NAME" --nfqueue-id "$NETPOL_QUEUE" --fail-open --metrics-bind-address 127.0.0.1:10266
  wait_for kube-network-policies 60 netpol_listening
  netpol_rules
  docflow_done network-policy "$t0" "ok kube-network-policies on NFQUEUE $NETPOL_QUEUE"
}

# --- add-ons ---------------------------------------------------------------------------------------

# Traefik's CRDs (ServersTransport...) from its Go module, the version the binary was built from.
traefik_crds() {
  local v dir
  v=$(docflow_dep_version "$BIN/traefik" github.com/traefik/traefik/v3)
  [[ -n "$v" ]] || docflow_die "cannot tell which Traefik $BIN/traefik is"
  dir=$(cd "$STATE" && GOFLAGS=-mod=mod GOWORK=off go mod download -json "github.com/traefik/traefik/v3@$v" | awk -F'"' '$2 == "Dir" { print $4 }')
  cat "$dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml"
}

ensure_addons() {
  local t0
  t0=$(docflow_now_us)
  traefik_crds | kc apply --server-side --field-manager docflow-cluster -f - >"$LOGS/addons.log"
  sed -e "s|@DNS_IP@|$DNS_IP|g" -e "s|@TAG@|$ADDON_TAG|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@PING_PORT@|$((HTTP_PORT + 1))|g" \
    "$ROOT/scripts/cluster/addons.yaml" | kc apply --server-side --field-manager docflow-cluster -f - >>"$LOGS/addons.log"
  kc -n kube-system rollout status deploy/coredns deploy/metrics-server deploy/traefik --timeout 180s >>"$LOGS/addons.log" 2>&1 \
    || { kc -n kube-system get pods -o wide >&2; docflow_die "add-ons not ready (kubectl -n kube-system describe pods)"; }
  wait_for kube-apiserver 120 kc get --raw /apis/metrics.k8s.io/v1beta1/nodes
  docflow_done addons "$t0" "ok CoreDNS, metrics-server, Traefik on 127.0.0.1:$HTTP_PORT"
}

print_env() {
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_FILE"
  printf 'export PATH=%q\n' "$BIN:$ORIG_PATH"
}

# What the cluster tests read (tests/cluster/support.ts), as KEY=value lines (scripts/test.ts).
print_test_env() {
  printf 'DOCFLOW_TEST_KUBECONFIG=%s\n' "$KUBECONFIG_FILE"
  printf 'DOCFLOW_TEST_CLUSTER_URL=%s\n' "http://127.0.0.1:$HTTP_PORT"
  printf 'DOCFLOW_TEST_CLUSTER_NAMESPACE=%s\n' "$NAMESPACE"
  printf 'DOCFLOW_TEST_CLUSTER_VALUES=%s\n' "$ROOT/charts/docflow/values-evaluation.yaml $ROOT/scripts/cluster/values.yaml $STATE/values-tokens.yaml $STATE/values-images.yaml"
  printf 'DOCFLOW_TEST_CLUSTER_CONTAINERD=%s\n' "$CONTAINERD_SOCK"
}

cmd_up() {
  [[ $(id -u) == 0 ]] || docflow_die "needs root (containerd, kubelet, iptables)"
  export PATH="$BIN:$PATH"
  mkdir -p "$STATE" "$LOGS" "$PIDS"
  ensure_packages
  ensure_binaries
  ensure_pki
  ensure_network
  ensure_containerd
  ensure_addon_images
  ensure_etcd
  ensure_apiserver
  ensure_controllers
  ensure_kubelet
  ensure_kube_proxy
  ensure_addons
  ensure_network_policies
  docflow_done up "$t_start" "cluster ready"
  print_env
}

# --- a registry for Skaffold -----------------------------------------------------------------------

REGISTRY_PORT="${DOCFLOW_CLUSTER_REGISTRY_PORT:-5000}"
SKAFFOLD_SOCKET="$RUNDIR/podman.sock"

# Skaffold pushes what it builds; the node pulls it from here. containerd 1.6's CRI pulls from a
# localhost registry over plain HTTP with no configuration (pkg/cri/server/image_pull.go,
# defaultScheme), so only podman is told the registry is insecure, in a registries.conf of its own
# read by a podman API service of its own (a podman process reads registries.conf once, and the
# Testcontainers socket of scripts/containers.sh predates this file). Both go with `down`.
ensure_registry() {
  local t0
  t0=$(docflow_now_us)
  bash "$ROOT/scripts/install-skaffold.sh" --quiet
  mkdir -p "$STATE/registry" "$RUNDIR"
  write_config "$STATE/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $STATE/registry
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
  start registry "$BIN/registry" serve "$STATE/registry.yml"
  wait_for registry 30 curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/"
  printf '[[registry]]\nlocation = "localhost:%s"\ninsecure = true\n' "$REGISTRY_PORT" | write_config "$STATE/registries.conf"
  start podman-skaffold env CONTAINERS_REGISTRIES_CONF="$STATE/registries.conf" podman system service --time=0 "unix://$SKAFFOLD_SOCKET"
  wait_for podman-skaffold 30 curl -fsS --unix-socket "$SKAFFOLD_SOCKET" http://podman/_ping
  docflow_done registry "$t0" "ok localhost:$REGISTRY_PORT, DOCKER_HOST=unix://$SKAFFOLD_SOCKET"
}

cmd_registry() {
  [[ $(id -u) == 0 ]] || docflow_die "needs root (rootful podman)"
  [[ -s "$STATE/values-images.yaml" && -s "$STATE/values-tokens.yaml" ]] \
    || docflow_die "run \`bash scripts/cluster.sh deploy\` once first: it imports the images of RabbitMQ, NATS and the S3 server that Skaffold's release uses"
  export PATH="$BIN:$PATH"
  ensure_registry
  print_env
  printf 'export DOCKER_HOST=%q\n' "unix://$SKAFFOLD_SOCKET"
  printf 'export SKAFFOLD_DEFAULT_REPO=%q\n' "localhost:$REGISTRY_PORT"
  printf 'export DOCFLOW_CLUSTER_STATE=%q\n' "$STATE"
  # Nothing to check for or report to on this network.
  printf 'export SKAFFOLD_UPDATE_CHECK=false SKAFFOLD_INTERACTIVE=false\n'
}

# --- docflow ---------------------------------------------------------------------------------------

cmd_deploy() {
  [[ -s "$KUBECONFIG_FILE" ]] && running kube-apiserver || docflow_die "the cluster is not up: bash scripts/cluster.sh up"
  export PATH="$BIN:$PATH"
  local t0 images=() values=()
  t0=$(docflow_now_us)
  eval "$(bash "$ROOT/scripts/containers.sh" --print-env)"
  DOCFLOW_IMAGE_TAG="$IMAGE_TAG" bash "$ROOT/scripts/images.sh" gateway processor web operator
  # Each image also gets a tag of its content (as Skaffold tags by digest), which the release
  # uses: a rebuilt image is a changed pod template, so `helm upgrade` rolls it out.
  local name id
  local -A tag=()
  for name in "gateway:$IMAGE_TAG" "processor:$IMAGE_TAG" "web:$IMAGE_TAG" "operator:$IMAGE_TAG" rabbitmq:3.10 nats:2.9 versitygw:v1.8.0 curl:bookworm; do
    id=$(podman image inspect --format '{{.Id}}' "localhost/docflow/$name" | cut -c1-12)
    podman tag "localhost/docflow/$name" "localhost/docflow/${name%%:*}:$id"
    images+=("localhost/docflow/${name%%:*}:$id")
    tag[${name%%:*}]=$id
  done
  # JSON is YAML: one document for helm and for the tests' upgrades.
  printf '{"gateway": {"image": {"tag": "%s"}}, "processor": {"image": {"tag": "%s"}}, "web": {"image": {"tag": "%s"}}, "operator": {"image": {"tag": "%s"}},
 "evaluation": {"rabbitmq": {"image": {"tag": "%s"}}, "nats": {"image": {"tag": "%s"}}, "s3": {"image": {"tag": "%s"}}},
 "tests": {"image": {"tag": "%s"}}}\n' "${tag[gateway]}" "${tag[processor]}" "${tag[web]}" "${tag[operator]}" "${tag[rabbitmq]}" "${tag[nats]}" "${tag[versitygw]}" "${tag[curl]}" \
    >"$STATE/values-images.yaml"
  docflow_done images "$t0" "built docflow's images"
  t0=$(docflow_now_us)
  import_images "${images[@]}" | sed 's/^/[cluster] imported /' >&2
  docflow_done load "$t0" "images in containerd"
  t0=$(docflow_now_us)
  # Two tenants' sign-in tokens, made once per cluster (the chart's auth.devTokens).
  if [[ ! -s "$STATE/values-tokens.yaml" ]]; then
    printf 'auth:\n  devTokens: "%s=tenant-a,%s=tenant-b"\n' "$(openssl rand -hex 24)" "$(openssl rand -hex 24)" >"$STATE/values-tokens.yaml"
    chmod 600 "$STATE/values-tokens.yaml"
  fi
  values=(-f "$ROOT/charts/docflow/values-evaluation.yaml" -f "$ROOT/scripts/cluster/values.yaml" -f "$STATE/values-tokens.yaml" -f "$STATE/values-images.yaml")
  for f in ${DOCFLOW_CLUSTER_VALUES:-}; do values+=(-f "$f"); done
  # Helm installs a chart's crds/ on the first install only, never on upgrade: applied here first,
  # server-side, so that a release installed before a CRD existed (or changed) gets it, as
  # docs/deploy.md tells an SRE to do before every upgrade.
  kc apply --server-side --field-manager docflow-chart -f "$ROOT/charts/docflow/crds/" >"$LOGS/crds.log" 2>&1 \
    || { cat "$LOGS/crds.log" >&2; docflow_die "applying the chart's CRDs failed"; }
  helm --kubeconfig "$KUBECONFIG_FILE" upgrade --install "$RELEASE" "$ROOT/charts/docflow" -n "$NAMESPACE" --create-namespace \
    "${values[@]}" --wait --timeout 10m >"$LOGS/helm.log" 2>&1 \
    || { tail -n 20 "$LOGS/helm.log" >&2; kc -n "$NAMESPACE" get pods -o wide >&2; docflow_die "helm upgrade --install failed (log: $LOGS/helm.log)"; }
  docflow_done helm "$t0" "release $RELEASE in namespace $NAMESPACE"
  local token
  token=$(sed -n 's/^  devTokens: "\([^=]*\)=tenant-a,.*/\1/p' "$STATE/values-tokens.yaml")
  echo "[cluster] docflow is at http://127.0.0.1:$HTTP_PORT/ ; sign in as tenant-a: http://127.0.0.1:$HTTP_PORT/#token=$token" >&2
  docflow_done deploy "$t_start" "ready"
}

cmd_status() {
  local name
  for name in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kube-network-policies registry podman-skaffold; do
    if running "$name"; then printf '%-24s running (pid %s)\n' "$name" "$(cat "$PIDS/$name")"; else printf '%-24s stopped\n' "$name"; fi
  done
  if running kube-apiserver; then
    kc get nodes -o wide || true
    kc get pods -A -o wide || true
  fi
}

cmd_down() {
  local t0 name pid
  t0=$(docflow_now_us)
  # Pods first, while the kubelet and containerd still run: their sandboxes and mounts go too.
  if running kube-apiserver && running kubelet; then
    kc delete namespace "$NAMESPACE" --wait=false --ignore-not-found >/dev/null 2>&1 || true
  fi
  for name in kube-network-policies kube-proxy kube-scheduler kube-controller-manager kubelet kube-apiserver etcd registry podman-skaffold; do stop "$name"; done
  if running containerd; then
    ctr_ tasks ls -q 2>/dev/null | while read -r id; do ctr_ tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
    sleep 1
    ctr_ tasks ls -q 2>/dev/null | while read -r id; do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
  fi
  stop containerd
  # Leftover shims (their containers were killed above) and the pods' mounts and namespaces.
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $CONTAINERD_SOCK" 2>/dev/null || true
  grep -E " ($STATE|$RUNDIR)/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  # kube-proxy's, the kubelet's and the NetworkPolicy rules' iptables chains.
  if [[ -x "$BIN/kube-proxy" ]]; then "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  for table in nat filter mangle; do
    [[ "$(iptables-save -t "$table" 2>/dev/null)" =~ KUBE-|$NETPOL_CHAIN ]] || continue
    iptables-save -t "$table" | grep -vE "KUBE-|$NETPOL_CHAIN" | iptables-restore -T "$table" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  if [[ -s "$STATE/sysctls.before" ]]; then
    while IFS= read -r line; do sysctl -qw "$line" || true; done <"$STATE/sysctls.before"
  fi
  rm -rf "$STATE" "$RUNDIR"
  docflow_done down "$t0" "stopped; removed $STATE"
}

case "${1:-}" in
  up) cmd_up ;;
  deploy) cmd_deploy ;;
  status) cmd_status ;;
  env) print_env ;;
  test-env) print_test_env ;;
  registry) cmd_registry ;;
  down) cmd_down ;;
  -h|--help|"") sed -n '2,36p' "$0"; [[ -n "${1:-}" ]] ;;
  *) echo "usage: $0 up|deploy|status|env|test-env|registry|down" >&2; exit 2 ;;
esac
