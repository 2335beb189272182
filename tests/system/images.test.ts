/**
 * The system test: docflow's own images, not the source tree. The gateway, processor and web
 * images (scripts/images.sh, from the services' Dockerfiles) run as containers in one container
 * network with RabbitMQ, NATS and the S3 server, the way a pod runs them (image's non-root user,
 * read-only root file system with tmpfs where the chart mounts an emptyDir, all capabilities
 * dropped), and a real PDF and a PPTX go through them from upload to rendered pages.
 *
 * Needs a container engine (DOCKER_HOST; scripts/containers.sh provisions podman) and the images:
 * `npm test` builds them when it runs the services as containers (scripts/test.ts). Image names:
 * DOCFLOW_TEST_{GATEWAY,PROCESSOR,WEB}_IMAGE, default localhost/docflow/<service>:dev.
 */
import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GenericContainer, ImageName, Network, Wait, getContainerRuntimeClient, type StartedNetwork, type StartedTestContainer } from "testcontainers";
import { generateNatsAuth } from "@docflow/infra/nats-auth";
import { startNatsContainer, startRabbitMqContainer, startS3Container, type ContainerHandle } from "@docflow/tools/containers";
import { makePptx, makeTextPdf, pageWords } from "../fixtures/generate.ts";

const IMAGES = {
  gateway: process.env.DOCFLOW_TEST_GATEWAY_IMAGE || "localhost/docflow/gateway:dev",
  processor: process.env.DOCFLOW_TEST_PROCESSOR_IMAGE || "localhost/docflow/processor:dev",
  web: process.env.DOCFLOW_TEST_WEB_IMAGE || "localhost/docflow/web:dev",
};
const UID = "10001";
const TENANT = "acme";
const TOKEN = `tok-${randomBytes(12).toString("hex")}`;

/**
 * A container started the way the chart's pods run: the image's own user, read-only root file
 * system, no capabilities, no privilege escalation. (Testcontainers has no builder method for
 * these; they are Docker API host settings.)
 */
class PodLikeContainer extends GenericContainer {
  /** Everything the container printed, for the error when it does not become ready. */
  readonly output: string[] = [];
  constructor(image: string) {
    super(image);
    this.hostConfig.ReadonlyRootfs = true;
    this.hostConfig.CapDrop = ["ALL"];
    this.hostConfig.SecurityOpt = ["no-new-privileges"];
    this.withLogConsumer((stream) => stream.on("data", (d: Buffer | string) => this.output.push(d.toString())));
  }

  override async start(): Promise<StartedTestContainer> {
    try {
      return await super.start();
    } catch (err) {
      throw new Error(`${this.imageName.string} did not become ready: ${err instanceof Error ? err.message : String(err)}\n${this.output.join("").slice(-4000)}`, { cause: err });
    }
  }
}

let network: StartedNetwork;
const handles: ContainerHandle[] = [];
const started: StartedTestContainer[] = [];
let gateway: StartedTestContainer;
let processor: StartedTestContainer;
let web: StartedTestContainer;
let baseUrl: string;
let scratch: string;

async function requireImage(name: string): Promise<void> {
  const client = await getContainerRuntimeClient();
  if (!(await client.image.exists(ImageName.fromString(name)))) {
    throw new Error(`image ${name} is missing: build it with 'bash scripts/images.sh' (npm test does when it runs the services as containers)`);
  }
}

beforeAll(async () => {
  await Promise.all(Object.values(IMAGES).map(requireImage));
  scratch = await mkdtemp(join(tmpdir(), "docflow-system-"));
  network = await new Network().start();
  const auth = await generateNatsAuth();
  const [rabbit, nats, s3] = await Promise.all([
    startRabbitMqContainer({ management: false, network }),
    startNatsContainer({ config: auth.serverConfig, network }),
    startS3Container({ buckets: ["docflow"], network }),
  ]);
  handles.push(rabbit, nats, s3);
  // The services' NATS credentials, mounted read-only like the chart's Secret volume.
  const creds = join(scratch, "nats.creds");
  await writeFile(creds, auth.serviceCreds);
  await chmod(creds, 0o644);
  await chmod(scratch, 0o755);
  const shared = {
    LOG_LEVEL: "info",
    DOCFLOW_AMQP_URL: rabbit.internalUrl!,
    DOCFLOW_NATS_URL: nats.internalUrl!,
    DOCFLOW_NATS_CREDS: "/etc/docflow/nats/nats.creds",
    DOCFLOW_STORAGE: "s3",
    DOCFLOW_S3_ENDPOINT: s3.internalEndpoint!,
    DOCFLOW_S3_BUCKET: "docflow",
    AWS_ACCESS_KEY_ID: s3.accessKey,
    AWS_SECRET_ACCESS_KEY: s3.secretKey,
    AWS_REGION: "us-east-1",
    DOCFLOW_DELIVERY_LIMIT: "2",
  };
  const mounts = [{ source: creds, target: "/etc/docflow/nats/nats.creds", mode: "ro" as const }];
  [gateway, processor, web] = await Promise.all([
    new PodLikeContainer(IMAGES.gateway)
      .withNetwork(network)
      .withNetworkAliases("gateway")
      .withEnvironment({
        ...shared,
        OTEL_SERVICE_NAME: "gateway",
        DOCFLOW_DEV_TOKENS: `${TOKEN}=${TENANT}`,
        DOCFLOW_REALTIME_SIGNING_SEED: auth.signingSeed,
        DOCFLOW_REALTIME_ACCOUNT: auth.account,
        DOCFLOW_REALTIME_WS_URL: nats.wsUrl,
      })
      .withBindMounts(mounts)
      .withTmpFs({ "/tmp": "rw,size=64m" })
      .withExposedPorts(8080)
      .withWaitStrategy(Wait.forHttp("/readyz", 8080).forStatusCode(200))
      .withStartupTimeout(90_000)
      .start(),
    new PodLikeContainer(IMAGES.processor)
      .withNetwork(network)
      .withEnvironment({ ...shared, OTEL_SERVICE_NAME: "processor", DOCFLOW_PROCESSOR_CONCURRENCY: "2" })
      .withBindMounts(mounts)
      .withTmpFs({ "/tmp": "rw,size=256m", "/work": "rw,size=1g" })
      .withExposedPorts(8081)
      .withWaitStrategy(Wait.forHttp("/readyz", 8081).forStatusCode(200))
      .withStartupTimeout(90_000)
      .start(),
    new PodLikeContainer(IMAGES.web)
      .withNetwork(network)
      .withTmpFs({ "/tmp": "rw,size=16m" })
      .withExposedPorts(8080)
      .withWaitStrategy(Wait.forHttp("/readyz", 8080).forStatusCode(200))
      .withStartupTimeout(60_000)
      .start(),
  ]);
  started.push(gateway, processor, web);
  baseUrl = `http://${gateway.getHost()}:${gateway.getMappedPort(8080)}`;
}, 240_000);

afterAll(async () => {
  await Promise.allSettled(started.map((c) => c.stop({ timeout: 15_000 })));
  await Promise.allSettled(handles.map((h) => h.stop()));
  await network?.stop().catch(() => undefined);
  if (scratch) await rm(scratch, { recursive: true, force: true });
}, 120_000);

const auth = { authorization: `Bearer ${TOKEN}` };

async function upload(file: string, contentType: string, filename: string): Promise<{ id: string; sha256: string | null }> {
  const body = await readFile(file);
  const res = await fetch(`${baseUrl}/v1/documents?filename=${encodeURIComponent(filename)}`, { method: "POST", headers: { ...auth, "content-type": contentType }, body });
  expect(res.status, await res.clone().text()).toBe(202);
  return (await res.json()) as { id: string; sha256: string | null };
}

async function waitForJob(id: string, timeoutMs: number): Promise<{ status: string; pageCount: number | null; pagesDone: number; error?: unknown }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await (await fetch(`${baseUrl}/v1/jobs/${id}`, { headers: auth })).json()) as { status: string; pageCount: number | null; pagesDone: number; error?: unknown };
    if (job.status === "completed" || job.status === "failed") return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} after ${timeoutMs} ms; processor log:\n${await logsOf(processor)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function logsOf(container: StartedTestContainer): Promise<string> {
  const stream = await container.logs({ tail: 60 });
  let out = "";
  stream.on("data", (d: Buffer) => (out += d.toString()));
  await new Promise((r) => setTimeout(r, 300));
  stream.destroy();
  return out;
}

async function exec(container: StartedTestContainer, cmd: string[]): Promise<{ exitCode: number; output: string }> {
  const res = await container.exec(cmd);
  return { exitCode: res.exitCode, output: res.output.trim() };
}

describe("docflow's images in containers", () => {
  it("run as the unprivileged user 10001 and answer their probes", async () => {
    for (const [container, port] of [
      [gateway, 8080],
      [processor, 8081],
      [web, 8080],
    ] as const) {
      expect((await exec(container, ["id", "-u"])).output).toBe(UID);
      const base = `http://${container.getHost()}:${container.getMappedPort(port)}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
    }
    // The root file system is read-only: nothing of the app can be changed at run time.
    expect((await exec(gateway, ["touch", "/app/x"])).exitCode).not.toBe(0);
  });

  it("keep the processor's engines out of the gateway image (the seed incident's root cause)", async () => {
    for (const tool of ["pdftoppm", "soffice"]) {
      expect((await exec(gateway, ["sh", "-c", `command -v ${tool}`])).exitCode, `${tool} in the gateway image`).not.toBe(0);
      expect((await exec(processor, ["sh", "-c", `command -v ${tool}`])).exitCode, `${tool} in the processor image`).toBe(0);
    }
    expect((await exec(gateway, ["test", "-e", "/app/node_modules/sharp"])).exitCode).not.toBe(0);
    expect((await exec(processor, ["test", "-e", "/app/node_modules/sharp"])).exitCode).toBe(0);
    // No package manager in the images that run.
    for (const container of [gateway, processor, web]) expect((await exec(container, ["sh", "-c", "command -v npm"])).exitCode).not.toBe(0);
  });

  it("process a PDF uploaded through the gateway image into pages with text, thumbnails and previews", async () => {
    const pdf = join(scratch, "report.pdf");
    const pages = [pageWords(1), pageWords(2), pageWords(3)];
    await makeTextPdf(pdf, pages);
    const created = await upload(pdf, "application/pdf", "report.pdf");
    expect(created.sha256).toBe(
      createHash("sha256")
        .update(await readFile(pdf))
        .digest("hex"),
    );
    const job = await waitForJob(created.id, 120_000);
    expect(job).toMatchObject({ status: "completed", pageCount: 3, pagesDone: 3 });
    for (const [i, words] of pages.entries()) {
      const page = (await (await fetch(`${baseUrl}/v1/jobs/${created.id}/pages/${i + 1}`, { headers: auth })).json()) as { text: string };
      expect(page.text).toContain(words.split(" ")[0]);
    }
    const thumb = Buffer.from(await (await fetch(`${baseUrl}/v1/jobs/${created.id}/pages/1/thumbnail`, { headers: auth })).arrayBuffer());
    expect(thumb.subarray(8, 12).toString("latin1")).toBe("WEBP");
    const preview = Buffer.from(await (await fetch(`${baseUrl}/v1/jobs/${created.id}/pages/1/preview`, { headers: auth })).arrayBuffer());
    expect(preview.subarray(1, 4).toString("latin1")).toBe("PNG");
  });

  it("convert a PPTX with the LibreOffice of the processor image", async () => {
    const pptx = join(scratch, "deck.pptx");
    await makePptx(pptx, ["Quarterly results", "Next steps"]);
    const created = await upload(pptx, "application/vnd.openxmlformats-officedocument.presentationml.presentation", "deck.pptx");
    const job = await waitForJob(created.id, 180_000);
    expect(job, JSON.stringify(job.error)).toMatchObject({ status: "completed", pageCount: 2, pagesDone: 2 });
    const page = (await (await fetch(`${baseUrl}/v1/jobs/${created.id}/pages/2`, { headers: auth })).json()) as { text: string };
    expect(page.text).toContain("Next steps");
  });

  it("serve the web app from the web image with its security headers", async () => {
    const res = await fetch(`http://${web.getHost()}:${web.getMappedPort(8080)}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("default-src");
    expect(await res.text()).toContain('<div id="app"');
  });
});
