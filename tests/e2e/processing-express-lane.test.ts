import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type ChannelModel } from "amqplib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultPages, makeTextPdf } from "../fixtures/generate.ts";
import { testServices } from "../support/env.ts";
import { jobsApi } from "../support/jobs-api.ts";
import { startStack, type Stack } from "../support/stack.ts";

const BIG_PAGES = 120;

/**
 * Fairness on the real stack: one processor that renders one range at a time,
 * and a window so wide that every range of a long document is queued at once.
 * On a FIFO render queue a 1-page upload of another tenant would wait for all
 * of them; through the express lane it completes while the long one renders.
 */
describe("processing: the express lane", () => {
  let stack: Stack;
  let dir: string;
  let amqp: ChannelModel;
  let acme: string;
  let globex: string;

  const { upload, getJob, waitFor, waitForEnd } = jobsApi(() => stack);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-express-"));
    stack = await startStack({
      processors: 1,
      env: {
        DOCFLOW_PROCESSOR_CONCURRENCY: "1",
        DOCFLOW_RANGE_SIZE: "2",
        // Every range of the long document goes out at once: the render queue is full of them.
        DOCFLOW_RANGE_WINDOW: "1000",
        DOCFLOW_TASK_TIMEOUT_MS: "60000",
      },
    });
    [acme, globex] = Object.keys(stack.tokens) as [string, string];
    amqp = await connect(testServices().amqpUrl);
  });

  afterAll(async () => {
    await amqp?.close().catch(() => {});
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("completes a 1-page job of another tenant while every range of a long document waits in the render queue", async () => {
    const long = join(dir, "long.pdf");
    await makeTextPdf(long, defaultPages(BIG_PAGES));
    const small = join(dir, "small.pdf");
    await makeTextPdf(small, defaultPages(1));
    const ns = stack.env.DOCFLOW_AMQP_NAMESPACE!;
    const ch = await amqp.createChannel();

    const big = await upload(acme, long, "long.pdf");
    // Rendering has begun (page 1 came through the express lane, the next ranges through the render queue).
    await waitFor("the long document's first ranges", async () => ((await getJob(acme, big.id)).pagesDone >= 3 ? true : undefined), 60_000);
    const backlog = (await ch.checkQueue(`${ns}.render`)).messageCount;
    expect(backlog).toBeGreaterThan(10);

    const tiny = await upload(globex, small, "small.pdf");
    const tinyJob = await waitForEnd(globex, tiny.id, 30_000);
    const bigNow = await getJob(acme, big.id);
    const stillQueued = (await ch.checkQueue(`${ns}.render`)).messageCount;
    expect(tinyJob).toMatchObject({ status: "completed", pageCount: 1, pagesDone: 1 });
    // The long document is still rendering, with ranges still queued ahead of where a FIFO would have put the small job.
    expect(bigNow.status).toBe("processing");
    expect(bigNow.pagesDone).toBeLessThan(BIG_PAGES);
    expect(stillQueued).toBeGreaterThan(0);
    await ch.close();

    // And the long one still completes, every page of it.
    const bigJob = await waitForEnd(acme, big.id, 180_000);
    expect(bigJob).toMatchObject({ status: "completed", pageCount: BIG_PAGES, pagesDone: BIG_PAGES });
  });
});
