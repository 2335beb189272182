import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { helm, isReady, kubectl, kubectlJson, pods, target, type KubeObject, type Pod } from "./support.ts";

/**
 * Scenario 8, NetworkPolicies enforced: the evaluation RabbitMQ, NATS and S3 server admit only
 * docflow's gateway and processor. A pod of this namespace with other labels cannot open a TCP
 * connection to any of them, neither through its Service nor to the pod's own address: its
 * connection attempts go unanswered (dropped, not refused), while the same pod still reaches
 * CoreDNS (no policy there), so its network works and the policies make the difference. The
 * gateway and the processor, from inside their containers, connect to all three.
 *
 * On the local cluster the enforcer is kube-network-policies, a host process of
 * scripts/cluster.sh (docs/deploy.md): when it is not running, the policies are only objects,
 * the outside pod connects, and this scenario fails.
 */

const BLOCKED_AFTER_S = 5;
const DEPENDENCIES = [
  { component: "rabbitmq", port: 5672 },
  { component: "nats", port: 4222 },
  { component: "s3", port: 7070 },
] as const;

type Outcome = "connected" | "timeout" | "refused" | string;

interface Service extends KubeObject {
  spec: { clusterIP: string; ports: { name?: string; port: number }[] };
}

interface NetworkPolicy extends KubeObject {
  spec: {
    podSelector: { matchLabels?: Record<string, string> };
    policyTypes?: string[];
    ingress?: { from?: { podSelector?: { matchLabels?: Record<string, string> }; namespaceSelector?: unknown; ipBlock?: unknown }[] }[];
  };
}

/** A TCP connection from a pod with bash (the test image): connected, timeout (no answer: dropped) or refused. */
async function probeWithBash(pod: string, host: string, port: number): Promise<Outcome> {
  const script = `timeout ${BLOCKED_AFTER_S} bash -c 'exec 3<>/dev/tcp/$0/$1' "$1" "$2" 2>/dev/null; echo "exit=$?"`;
  const out = await kubectl(["exec", pod, "--", "bash", "-c", script, "probe", host, String(port)], { timeoutMs: 60_000 });
  const code = Number(/exit=(\d+)/.exec(out)?.[1] ?? "-1");
  return code === 0 ? "connected" : code === 124 ? "timeout" : code === 1 ? "refused" : `exit ${code}: ${out.trim()}`;
}

/** The same from a docflow container, with its own Node (the images have no bash guarantee). */
async function probeWithNode(pod: string, container: string, host: string, port: number): Promise<Outcome> {
  const script = `const [host, port] = process.argv.slice(1);
const s = require("node:net").connect(Number(port), host, () => { console.log("connected"); process.exit(0); });
s.on("error", (e) => { console.log(e.code === "ECONNREFUSED" ? "refused" : e.code); process.exit(0); });
setTimeout(() => { console.log("timeout"); process.exit(0); }, ${BLOCKED_AFTER_S * 1000});`;
  const out = await kubectl(["exec", pod, "-c", container, "--", "node", "-e", script, host, String(port)], { timeoutMs: 60_000 });
  return out.trim().split("\n").pop() ?? "";
}

describe("scenario 8: NetworkPolicies enforced", () => {
  const outside = `netpol-outside-${Date.now().toString(36)}`;
  // component -> [Service address, pod address]
  const addresses = new Map<string, { service: string; pod: string; port: number }>();

  beforeAll(async () => {
    const t = target();
    for (const dep of DEPENDENCIES) {
      const svc = await kubectlJson<Service>(["get", "service", `${t.release}-${dep.component}`]);
      expect(
        svc.spec.ports.map((p) => p.port),
        `${dep.component}'s Service ports`,
      ).toContain(dep.port);
      const [pod] = (await pods(dep.component)).filter(isReady);
      expect(pod?.status.podIP, `a Ready ${dep.component} pod`).toBeTruthy();
      addresses.set(dep.component, { service: svc.spec.clusterIP, pod: pod!.status.podIP!, port: dep.port });
    }

    // The chart's test image (curl on Debian, with bash), as the release's `helm test` runs it.
    const values = JSON.parse(await helm(["get", "values", t.release, "--all", "-o", "json"])) as { tests: { image: { repository: string; tag: string } } };
    const image = `${values.tests.image.repository}:${values.tests.image.tag}`;
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: outside, labels: { "app.kubernetes.io/name": "netpol-probe", "app.kubernetes.io/part-of": "docflow-cluster-tests" } },
      spec: {
        restartPolicy: "Never",
        activeDeadlineSeconds: 900,
        terminationGracePeriodSeconds: 1,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "probe",
            image,
            imagePullPolicy: "IfNotPresent",
            command: ["sleep", "900"],
            resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { memory: "64Mi" } },
            securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
          },
        ],
      },
    };
    await kubectl(["apply", "-f", "-"], { input: JSON.stringify(pod) });
    await kubectl(["wait", "--for=condition=Ready", `pod/${outside}`, "--timeout=120s"], { timeoutMs: 150_000 });
  });

  afterAll(async () => {
    await kubectl(["delete", "pod", outside, "--ignore-not-found", "--wait=false"]).catch(() => undefined);
  });

  it("has a policy on each dependency that admits only docflow's own pods on its client port", async () => {
    const t = target();
    for (const dep of DEPENDENCIES) {
      const policy = await kubectlJson<NetworkPolicy>(["get", "networkpolicy", `${t.release}-${dep.component}`]);
      // It selects the dependency's pods...
      const [pod] = (await pods(dep.component)) as [Pod];
      for (const [key, value] of Object.entries(policy.spec.podSelector.matchLabels ?? {})) {
        expect(pod.metadata.labels?.[key], `${policy.metadata.name} selects ${pod.metadata.name} (${key})`).toBe(value);
      }
      expect(policy.spec.policyTypes).toContain("Ingress");
      // ...and its client port admits the release's gateway and processor (and its operator, when
      // on) by label: no namespace, no address range.
      const peers = policy.spec.ingress?.[0]?.from ?? [];
      for (const peer of peers) {
        expect(peer.namespaceSelector ?? peer.ipBlock, `${policy.metadata.name}: ${JSON.stringify(peer)}`).toBeUndefined();
        expect(peer.podSelector?.matchLabels?.["app.kubernetes.io/instance"]).toBe(t.release);
      }
      const components = peers.map((peer) => peer.podSelector?.matchLabels?.["app.kubernetes.io/component"]);
      expect(components, `${policy.metadata.name}'s client peers`).toEqual(expect.arrayContaining(["gateway", "processor"]));
      expect(components.every((c) => ["gateway", "processor", "operator"].includes(c ?? ""))).toBe(true);
    }
  });

  it("drops connections to RabbitMQ, NATS and S3 from a pod outside the allowed peers", async () => {
    // Its network works: CoreDNS (no policy) answers on TCP.
    const dns = await kubectlJson<Service>(["get", "service", "kube-dns"], { namespace: "kube-system" });
    expect(await probeWithBash(outside, dns.spec.clusterIP, 53), "the outside pod reaches CoreDNS").toBe("connected");

    const attempts = DEPENDENCIES.flatMap((dep) => {
      const a = addresses.get(dep.component)!;
      return [
        { what: `${dep.component} Service ${a.service}:${a.port}`, host: a.service, port: a.port },
        { what: `${dep.component} pod ${a.pod}:${a.port}`, host: a.pod, port: a.port },
      ];
    });
    const outcomes = await Promise.all(attempts.map(async (x) => [x.what, await probeWithBash(outside, x.host, x.port)] as const));
    process.stderr.write(`[cluster] from ${outside}: ${outcomes.map(([w, o]) => `${w} ${o}`).join("; ")}\n`);
    // Dropped (no answer within the timeout), not refused: the servers are up, the policy stops it.
    expect(Object.fromEntries(outcomes)).toEqual(Object.fromEntries(attempts.map((x) => [x.what, "timeout"])));
  });

  it("lets the gateway and the processor connect to all three", async () => {
    for (const component of ["gateway", "processor"]) {
      const [pod] = (await pods(component)).filter(isReady);
      expect(pod, `a Ready ${component} pod`).toBeDefined();
      const outcomes = await Promise.all(
        DEPENDENCIES.map(async (dep) => {
          const a = addresses.get(dep.component)!;
          return [`${dep.component} ${a.service}:${a.port}`, await probeWithNode(pod!.metadata.name, component, a.service, a.port)] as const;
        }),
      );
      expect(Object.fromEntries(outcomes), `from ${pod!.metadata.name}`).toEqual(Object.fromEntries(outcomes.map(([w]) => [w, "connected"])));
    }
  });
});
