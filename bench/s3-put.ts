/**
 * What storing a page's outputs costs in CPU: N PutObjects of a page's three objects (a 237 KiB
 * PNG preview, a 5 KiB WebP thumbnail, a 0.5 KiB JSON; the average sizes of the 300-page benchmark
 * PDF), `--concurrency` pages at a time, against the local S3 server (versitygw), through:
 *   sdk       S3ObjectStore.put, as the processor stores pages (the AWS SDK; SigV4 with the payload's SHA-256)
 *   sdk-unsigned  the same client, buffered bodies signed as UNSIGNED-PAYLOAD
 * CPU ms per page of this process and of the S3 server, per variant, interleaved rounds.
 *
 *   node bench/s3-put.ts [--pages 300] [--rounds 3] [--concurrency 2]
 */
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { cleanups, median, runMain } from "./lib/harness.ts";
import { cpuSplit } from "./lib/docflow.ts";
import { S3ObjectStore } from "../packages/infra/src/object-store/s3.ts";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      pages: { type: "string", default: "300" },
      rounds: { type: "string", default: "3" },
      concurrency: { type: "string", default: "2" },
      variants: { type: "string", default: "sdk,sdk-unsigned" },
    },
  });
  const pages = Number(values.pages);
  const c = cleanups();
  try {
    const { startS3 } = await import("@docflow/tools/services");
    const s3 = await startS3({ buckets: ["bench"] });
    c.push(() => s3.stop());
    const opts = { bucket: "bench", endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey } };
    // Incompressible bytes of the real sizes (the server does not look inside).
    const preview = randomBytes(237 * 1024);
    const thumb = randomBytes(5 * 1024);
    const json = Buffer.from(JSON.stringify({ n: 1, width: 612, height: 792, text: "x".repeat(400) }));
    const variants: Record<string, (i: number) => Promise<void>> = {};
    for (const v of values.variants.split(",")) {
      const store = new S3ObjectStore(opts);
      if (v === "sdk-unsigned") {
        store.client.middlewareStack.add(
          (next) => async (args) => {
            const r = args.request as { headers?: Record<string, string> };
            if (r.headers) r.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
            return next(args);
          },
          { step: "build", name: "benchUnsigned" },
        );
      }
      variants[v] = async (i) => {
        await Promise.all([
          store.put(`p/${v}/${i}.json`, json, { contentType: "application/json" }),
          store.put(`p/${v}/${i}.thumb.webp`, thumb, { contentType: "image/webp" }),
          store.put(`p/${v}/${i}.preview.png`, preview, { contentType: "image/png" }),
        ]);
      };
    }
    const rows: Record<string, { self: number[]; server: number[]; wall: number[] }> = {};
    for (let round = 1; round <= Number(values.rounds); round++) {
      for (const [name, put] of Object.entries(variants)) {
        await put(0); // warm: connections, endpoint resolution
        const self0 = process.cpuUsage();
        const srv0 = (await cpuSplit(s3.pid)).self;
        const t0 = performance.now();
        let next = 1;
        await Promise.all(
          Array.from({ length: Number(values.concurrency) }, async () => {
            for (let i = next++; i <= pages; i = next++) await put(i);
          }),
        );
        const wall = performance.now() - t0;
        const self = process.cpuUsage(self0);
        const srv = (await cpuSplit(s3.pid)).self - srv0;
        (rows[name] ??= { self: [], server: [], wall: [] }).self.push((self.user + self.system) / 1000 / pages);
        rows[name].server.push((srv * 1000) / pages);
        rows[name].wall.push(wall / pages);
        console.log(
          `round ${round} ${name}: this process ${((self.user + self.system) / 1000 / pages).toFixed(2)} ms/page, S3 server ${((srv * 1000) / pages).toFixed(2)} ms/page, wall ${(wall / pages).toFixed(2)} ms/page`,
        );
      }
    }
    console.log("\n| variant | this process CPU ms/page | S3 server CPU ms/page | wall ms/page |\n|---|---|---|---|");
    for (const [name, r] of Object.entries(rows)) console.log(`| ${name} | ${median(r.self).toFixed(2)} | ${median(r.server).toFixed(2)} | ${median(r.wall).toFixed(2)} |`);
    return 0;
  } finally {
    await c.run();
  }
}

runMain(main);
