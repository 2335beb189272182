/**
 * The SRE's day on a real Kubernetes cluster, one scenario after another in this order: each
 * leaves the release as the next expects it (installed, in use, upgraded, a processor lost, a
 * dependency down and back, autoscaled and back; its NetworkPolicies enforced); Skaffold installs a
 * second release beside it and removes it again. See ./support.ts for the cluster it runs on.
 */
import "./01-install.scenario.ts";
import "./02-use.scenario.ts";
import "./03-upgrade.scenario.ts";
import "./04-busy-processor.scenario.ts";
import "./05-dependency-down.scenario.ts";
import "./06-autoscale.scenario.ts";
import "./07-skaffold.scenario.ts";
import "./08-network-policy.scenario.ts";
