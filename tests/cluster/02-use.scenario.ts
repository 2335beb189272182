import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "@docflow/contracts";
import { defaultPages, makePptx, makeTextPdf, paddedPdf, pageWords } from "../fixtures/generate.ts";
import { launchChromium, newSession, screenshot, type AppSession } from "../support/browser.ts";
import { pdftotextPage } from "../support/poppler.ts";
import { TusClient } from "../support/tus.ts";
import { api, componentLogs, eventually, kubectl, target, tokens } from "./support.ts";

/**
 * Scenario 2, use: a person in real Chromium, through the cluster's ingress controller (Traefik),
 * signs in, uploads a PDF and a PPTX with tus and watches their pages arrive over NATS'
 * WebSocket on the same host; every page's text matches pdftotext. Then the edge behaviour of the
 * incident: the ingress cuts a held request at its configured read timeout (the chart's
 * ServersTransport), and a 200 MiB tus upload in 5 MiB chunks never comes near it.
 */

const norm = (s: string) => s.replace(/\s+/g, " ").trim();
const PDF_PAGES = 6;
/** The release outlives a run (and other runs' jobs stay listed): this run's files have names of their own. */
const RUN = Date.now().toString(36);
const REPORT = `report-${RUN}.pdf`;
const DECK = `deck-${RUN}.pptx`;

/** Seconds Traefik waits for the gateway's answer: the chart's ServersTransport, read from the cluster. */
async function ingressReadTimeout(): Promise<number> {
  const value = await kubectl(["get", "serverstransports.traefik.io", target().release, "-o", "jsonpath={.spec.forwardingTimeouts.responseHeaderTimeout}"]);
  return Number(value.replace(/s$/, ""));
}

describe("scenario 2: use through the ingress", () => {
  let browser: Browser | undefined;
  let session: AppSession;
  let dir: string;
  let token: string;
  const file = (name: string) => join(dir, name);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-cluster-use-"));
    await Promise.all([makeTextPdf(file(REPORT), defaultPages(PDF_PAGES)), makePptx(file(DECK), ["Cluster alpha", "Ingress bravo"])]);
    token = (await tokens())["tenant-a"]!;
    browser = await launchChromium();
    session = await newSession(browser, "tenant-a");
  });

  afterAll(async () => {
    await session?.context.close().catch(() => undefined);
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function chooseFiles(page: Page, paths: string[]): Promise<void> {
    const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByRole("button", { name: "Choose files" }).click()]);
    await chooser.setFiles(paths);
  }

  it("signs in, uploads a PDF and a PPTX with tus, and shows their pages arriving live over NATS' WebSocket", async () => {
    const { page, log } = session;
    const { baseUrl } = target();
    try {
      await page.goto(`${baseUrl}/#token=${encodeURIComponent(token)}`);
      await page.getByRole("heading", { level: 1, name: "Documents" }).waitFor();
      await page.getByRole("banner").getByText("Live", { exact: true }).waitFor({ timeout: 30_000 });
      // The live connection is a WebSocket to NATS on the ingress' own host and port.
      expect(log.requests).toContain("POST /v1/realtime/credentials");
      const sockets = log.webSockets.map((u) => new URL(u));
      expect(sockets.map((u) => `${u.protocol}//${u.host}${u.pathname}`)).toContain(`ws://${new URL(baseUrl).host}/nats`);

      await chooseFiles(page, [file(REPORT), file(DECK)]);
      const list = page.getByRole("list", { name: "Documents, newest first" });
      const row = (name: string) => list.getByRole("listitem").filter({ has: page.getByRole("link", { name, exact: true }) });
      await row(REPORT).getByText("Ready", { exact: true }).waitFor({ timeout: 120_000 });
      await row(REPORT).getByText(`${PDF_PAGES}/${PDF_PAGES} pages`).waitFor();
      await row(DECK).getByText("Ready", { exact: true }).waitFor({ timeout: 180_000 });
      await row(DECK).getByText("2/2 pages").waitFor();
      await screenshot(page, "cluster-jobs-list");
      // The uploads went through tus (creation, then PATCHes), not the one-shot POST.
      expect(log.requests.filter((r) => r.startsWith("POST /v1/uploads")).length).toBeGreaterThanOrEqual(2);
      expect(log.requests.some((r) => r.startsWith("PATCH /v1/uploads/"))).toBe(true);
      expect(log.pageErrors).toEqual([]);
    } catch (err) {
      throw new Error(`${String(err)}\n--- gateway ---\n${await componentLogs("gateway")}\n--- processor ---\n${await componentLogs("processor")}`, { cause: err });
    }

    // Every page's text is pdftotext's, as the API returns it through the ingress.
    const client = api(token);
    const jobs = (await (await client.call("/v1/jobs")).json()) as { items: Job[] };
    const report = jobs.items.find((j) => j.filename === REPORT)!;
    expect(report.status).toBe("completed");
    expect(report.pagesDone).toBe(PDF_PAGES);
    const result = (await (await client.call(`/v1/jobs/${report.id}/result`)).json()) as { pages: { n: number; text: string }[] };
    expect(result.pages.map((p) => p.n)).toEqual(Array.from({ length: PDF_PAGES }, (_, i) => i + 1));
    for (const p of result.pages) {
      expect(norm(p.text)).toBe(norm(await pdftotextPage(file(REPORT), p.n)));
      expect(p.text).toContain(pageWords(p.n));
    }
    const deck = jobs.items.find((j) => j.filename === DECK)!;
    const deckResult = (await (await client.call(`/v1/jobs/${deck.id}/result`)).json()) as { pages: { text: string }[] };
    expect(deckResult.pages.map((p) => p.text).join(" ")).toContain("Ingress bravo");
  });

  it("cuts a request the backend holds at the ingress' configured read timeout (the chart's ServersTransport)", async () => {
    const { namespace, release, baseUrl } = target();
    const readTimeout = await ingressReadTimeout();
    expect(readTimeout).toBeGreaterThan(0);
    // A backend that answers nothing: a pod of the gateway image (Node) holding every request, behind the
    // same ServersTransport the chart's Services name, on a path of the app's ingress host.
    const name = "edge-hold";
    const manifest = {
      apiVersion: "v1",
      kind: "List",
      items: [
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name, labels: { "docflow-test": name } },
          spec: {
            automountServiceAccountToken: false,
            securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: "RuntimeDefault" } },
            containers: [
              {
                name: "hold",
                image: (await kubectl(["get", "deploy", `${release}-gateway`, "-o", "jsonpath={.spec.template.spec.containers[0].image}"])).trim(),
                imagePullPolicy: "IfNotPresent",
                command: ["node", "-e", "require('http').createServer(() => {}).listen(8080)"],
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
                readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
              },
            ],
          },
        },
        {
          apiVersion: "v1",
          kind: "Service",
          metadata: { name, annotations: { "traefik.ingress.kubernetes.io/service.serverstransport": `${namespace}-${release}@kubernetescrd` } },
          spec: { selector: { "docflow-test": name }, ports: [{ name: "http", port: 8080 }] },
        },
        {
          apiVersion: "networking.k8s.io/v1",
          kind: "Ingress",
          metadata: { name },
          spec: { ingressClassName: "traefik", rules: [{ http: { paths: [{ path: "/edge-hold", pathType: "Prefix", backend: { service: { name, port: { name: "http" } } } }] } }] },
        },
        {
          apiVersion: "networking.k8s.io/v1",
          kind: "NetworkPolicy",
          metadata: { name },
          spec: { podSelector: { matchLabels: { "docflow-test": name } }, policyTypes: ["Ingress"], ingress: [{}] },
        },
      ],
    };
    await kubectl(["apply", "-f", "-"], { input: JSON.stringify(manifest) });
    try {
      await kubectl(["wait", "--for=condition=Ready", `pod/${name}`, "--timeout=120s"], { timeoutMs: 130_000 });
      // Traefik picks the route and the pod's endpoint up from the API within seconds: until then
      // it answers 404 or 503 at once; then the request reaches the backend, which holds it.
      await eventually(
        "the route through Traefik to the holding backend",
        async () => {
          try {
            await fetch(`${baseUrl}/edge-hold/probe`, { signal: AbortSignal.timeout(1_500) });
            return undefined;
          } catch (err) {
            return (err as Error).name === "TimeoutError" ? true : undefined;
          }
        },
        60_000,
        500,
      );
      const t0 = performance.now();
      const res = await fetch(`${baseUrl}/edge-hold/report`, { signal: AbortSignal.timeout((readTimeout + 30) * 1000) });
      const held = (performance.now() - t0) / 1000;
      expect(res.status).toBe(504);
      expect(held).toBeGreaterThanOrEqual(readTimeout - 1);
      expect(held).toBeLessThan(readTimeout + 5);
    } finally {
      await kubectl(["delete", "-f", "-", "--wait=false"], { input: JSON.stringify(manifest) }).catch(() => undefined);
    }
  });

  it("takes a 200 MiB tus upload in 5 MiB chunks, each request far inside the ingress' read timeout, and stores it exactly", async () => {
    const { baseUrl } = target();
    const readTimeout = await ingressReadTimeout();
    const bytes = await paddedPdf(200 * 1024 * 1024, "A large upload through the ingress");
    const chunk = 5 * 1024 * 1024;
    const tus = new TusClient(token);
    const { res, location } = await tus.create(baseUrl, bytes.length, { filename: "big.pdf", filetype: "application/pdf" });
    expect(res.status).toBe(201);
    const path = new URL(location, baseUrl).pathname;
    const durations: number[] = [];
    let jobId = "";
    for (let offset = 0; offset < bytes.length; offset += chunk) {
      const body = bytes.subarray(offset, Math.min(offset + chunk, bytes.length));
      const t0 = performance.now();
      const patch = await tus.patch(baseUrl, path, offset, body);
      durations.push((performance.now() - t0) / 1000);
      const last = offset + body.length === bytes.length;
      expect(patch.status, `PATCH at ${offset}: ${await patch.clone().text()}`).toBe(last ? 200 : 204);
      if (last) jobId = patch.headers.get("docflow-job-id") ?? "";
      else expect(Number(patch.headers.get("upload-offset"))).toBe(offset + body.length);
    }
    const slowest = Math.max(...durations);
    process.stderr.write(
      `[cluster] ${bytes.length} bytes in ${durations.length} PATCHes through the ingress: slowest ${slowest.toFixed(2)} s, ` +
        `all ${durations.reduce((a, b) => a + b, 0).toFixed(1)} s (ingress read timeout ${readTimeout} s)\n`,
    );
    expect(slowest).toBeLessThan(readTimeout / 4);
    // The stored object is the uploaded bytes: the processor's SHA-256 of what it read from S3.
    const job = await api(token).waitForEnd(jobId, 180_000);
    expect(job.status).toBe("completed");
    expect(job.sha256).toBe(createHash("sha256").update(bytes).digest("hex"));
  });
});
