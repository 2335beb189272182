// network-policies enforces NetworkPolicies on the local cluster of scripts/cluster.sh: SIG
// Network's kube-network-policies controller (sigs.k8s.io/kube-network-policies/pkg/networkpolicy,
// built by scripts/install-envtest.sh --cluster) run as a host process, as kube-proxy is.
//
// Upstream's own command (cmd/main.go) only runs in a pod (rest.InClusterConfig) and stops on
// SIGINT alone; this one reads a kubeconfig and stops on SIGTERM too, so that the script's
// start/stop helpers drive it like the cluster's other processes.
//
// How packets reach it: the controller judges the first packet of every connection that the
// kernel hands to NFQUEUE $nfqueue-id, by the NetworkPolicies of the source and destination pods
// (getting the verdict in user space), and conntrack lets the rest of an accepted connection
// through. Upstream sends the packets there with an nftables `queue` rule, which this kernel
// cannot load (CONFIG_NFT_QUEUE is not set): the controller logs that its nftables sync failed,
// and scripts/cluster.sh sends the same packets with iptables' NFQUEUE target (xt_NFQUEUE is
// built in) instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() {
	klog.InitFlags(nil)
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster (required: this runs on the node, not in a pod)")
	nodeName := flag.String("hostname-override", "", "the Node whose pods are policed (default: the host name)")
	queueID := flag.Int("nfqueue-id", 100, "the NFQUEUE the node's rules send new connections to")
	failOpen := flag.Bool("fail-open", false, "accept a packet that cannot be judged (unparsable, or the queue is full)")
	metricsAddr := flag.String("metrics-bind-address", "127.0.0.1:9080", "where /metrics is served")
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "network-policies: --kubeconfig is required")
		os.Exit(2)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.ErrorS(err, "reading the kubeconfig", "path", *kubeconfig)
		os.Exit(1)
	}
	config.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	config.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.ErrorS(err, "creating the client")
		os.Exit(1)
	}
	factory := informers.NewSharedInformerFactory(client, 0)

	controller, err := networkpolicy.NewController(
		client,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil, // no AdminNetworkPolicy / BaselineAdminNetworkPolicy (alpha CRDs, not installed)
		networkpolicy.Config{
			FailOpen: *failOpen,
			QueueID:  *queueID,
			NodeName: *nodeName,
			// The conntrack race it works around is fixed in the kernels 6.12 and later.
			NetfilterBug1766Fix: false,
		},
	)
	if err != nil {
		klog.ErrorS(err, "creating the network policy controller")
		os.Exit(1)
	}

	http.Handle("/metrics", promhttp.Handler())
	go func() {
		if err := http.ListenAndServe(*metricsAddr, nil); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "serving metrics", "address", *metricsAddr)
		}
	}()

	done := make(chan error, 1)
	go func() { done <- controller.Run(ctx) }()
	factory.Start(ctx.Done())

	select {
	case err := <-done:
		// Run returns early only when it cannot listen on the queue.
		if err != nil {
			klog.ErrorS(err, "the network policy controller stopped")
			os.Exit(1)
		}
	case <-ctx.Done():
		klog.InfoS("stopping")
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
	klog.Flush()
}
