import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PDFDocument, degrees } from "pdf-lib";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { objectKeys, type JobRecord, type PageResult, type RenderMessage } from "@docflow/contracts";
import { defaultPages, makeTextPdf, pageWords } from "../../../../tests/fixtures/generate.ts";
import { rejection, jobRecord, TEST_JOB_ID, TEST_TENANT } from "../../test/support.ts";
import { loadConfig } from "../config.ts";
import type { ProcessorContext } from "../context.ts";
import { pageResult, render } from "./render.ts";

const TENANT = TEST_TENANT;
const JOB_ID = TEST_JOB_ID;
const PREFIX = objectKeys.jobPrefix(TENANT, JOB_ID);

let dir: string;
let fivePages: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "docflow-render-stage-"));
  fivePages = join(dir, "five.pdf");
  await makeTextPdf(fivePages, defaultPages(5));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A 5-page job in ranges 1, 2-3 and 4-5, with `done` finished and all three dispatched. */
const job = (done: number[], overrides: Partial<JobRecord> = {}): JobRecord =>
  jobRecord({
    pageCount: 5,
    pdfKey: "tenants/acme/source.pdf",
    ranges: [
      { first: 1, last: 1 },
      { first: 2, last: 3 },
      { first: 4, last: 5 },
    ],
    rangesDone: done,
    rangesDispatched: 3,
    ...overrides,
  });

function fakeContext(initial: JobRecord | null, pdf = fivePages) {
  let current = initial;
  const objects = new Map<string, { body: Buffer; contentType: string }>();
  const ctx = {
    config: loadConfig({}),
    log: { info: vi.fn(), warn: vi.fn(), error: vi.fn() },
    jobs: {
      get: vi.fn(async () => (current ? { record: current, revision: 1 } : null)),
      update: vi.fn(async (_tenant: string, _id: string, mutate: (r: JobRecord) => JobRecord | null) => {
        if (!current) return null;
        const next = mutate(structuredClone(current));
        if (next === null) return { record: current, revision: 1, changed: false };
        current = next;
        return { record: current, revision: 2, changed: true };
      }),
    },
    sources: { use: vi.fn(async <T>(_key: string, fn: (path: string) => Promise<T>) => fn(pdf)), evictJob: vi.fn(async () => {}) },
    store: {
      put: vi.fn(async (key: string, body: Buffer, opts: { contentType: string }) => void objects.set(key, { body, contentType: opts.contentType })),
      delete: vi.fn(async (key: string) => void objects.delete(key)),
    },
    nats: { publish: vi.fn() },
    publisher: { publish: vi.fn(async () => {}) },
    metrics: { pages: { inc: vi.fn() } },
  };
  return {
    ctx,
    objects,
    current: () => current,
    /** The job ends (or goes) while its range is rendered. */
    setJob: (record: JobRecord | null) => void (current = record),
    events: () => ctx.nats.publish.mock.calls.map((c) => (JSON.parse(c[1] as string) as { type: string }).type),
  };
}

const message = (first: number, last: number): RenderMessage => ({ v: 1, stage: "render", tenant: TENANT, jobId: JOB_ID, range: { first, last } });
const signal = (): AbortSignal => new AbortController().signal;
const asContext = (ctx: unknown): ProcessorContext => ctx as ProcessorContext;

describe("render: one page range", () => {
  it("stores each page's text, WebP thumbnail and PNG preview, marks the range done and announces it", async () => {
    const fake = fakeContext(job([1], { rangesDispatched: 2 }));
    await render(asContext(fake.ctx), message(2, 3), signal());

    expect([...fake.objects.keys()].sort()).toEqual(
      [2, 3].flatMap((n) => [objectKeys.pageJson(TENANT, JOB_ID, n), objectKeys.pageThumbnail(TENANT, JOB_ID, n), objectKeys.pagePreview(TENANT, JOB_ID, n)]).sort(),
    );
    const page = JSON.parse(fake.objects.get(objectKeys.pageJson(TENANT, JOB_ID, 3))!.body.toString("utf8")) as PageResult;
    expect(page).toMatchObject({ n: 3, width: 612, height: 792 });
    expect(page.text).toContain(pageWords(3));
    expect(page.text).not.toContain(pageWords(2));
    const thumbnail = fake.objects.get(objectKeys.pageThumbnail(TENANT, JOB_ID, 2))!;
    expect(thumbnail.contentType).toBe("image/webp");
    expect(await sharp(thumbnail.body).metadata()).toMatchObject({ format: "webp", width: 200, height: 259 });
    const preview = fake.objects.get(objectKeys.pagePreview(TENANT, JOB_ID, 2))!;
    expect(preview.contentType).toBe("image/png");
    expect(await sharp(preview.body).metadata()).toMatchObject({ format: "png", width: 1275, height: 1650 });
    expect(fake.objects.get(objectKeys.pageJson(TENANT, JOB_ID, 2))!.contentType).toBe("application/json");

    expect(fake.current()).toMatchObject({ rangesDone: [1, 2], pagesDone: 2, rangesDispatched: 3 });
    expect(fake.ctx.metrics.pages.inc).toHaveBeenCalledWith(2);
    expect(fake.events()).toEqual(["page.ready", "page.ready", "job.progress"]);
    // The finished range freed a place in the window: the last range goes out (a small job's: express).
    expect(fake.ctx.publisher.publish.mock.calls).toEqual([[message(4, 5), { express: true }]]);
    expect(fake.ctx.sources.evictJob).not.toHaveBeenCalled();
  });

  it("sends finish and lets go of the document after the last range", async () => {
    const fake = fakeContext(job([1, 2]));
    await render(asContext(fake.ctx), message(4, 5), signal());
    expect(fake.current()).toMatchObject({ rangesDone: [1, 2, 4], pagesDone: 2 });
    expect(fake.ctx.publisher.publish.mock.calls).toEqual([[{ v: 1, stage: "finish", tenant: TENANT, jobId: JOB_ID }]]);
    expect(fake.ctx.sources.evictJob).toHaveBeenCalledWith(PREFIX);
  });

  it("gives each page its size as shown: rotated pages swap width and height", async () => {
    const doc = await PDFDocument.create();
    doc.addPage([612, 792]);
    doc.addPage([300, 500]).setRotation(degrees(90));
    const rotated = join(dir, "rotated.pdf");
    await writeFile(rotated, await doc.save());
    const fake = fakeContext(job([], { pageCount: 2, ranges: [{ first: 1, last: 2 }], rangesDispatched: 1 }), rotated);
    await render(asContext(fake.ctx), message(1, 2), signal());
    const size = (n: number) => JSON.parse(fake.objects.get(objectKeys.pageJson(TENANT, JOB_ID, n))!.body.toString("utf8")) as PageResult;
    expect(size(1)).toMatchObject({ n: 1, width: 612, height: 792, text: "" });
    expect(size(2)).toMatchObject({ n: 2, width: 500, height: 300 });
  });

  it("does nothing but let go of the document when the job has ended or is gone", async () => {
    for (const record of [job([], { status: "canceled" }), null]) {
      const fake = fakeContext(record);
      await render(asContext(fake.ctx), message(2, 3), signal());
      expect(fake.ctx.sources.evictJob).toHaveBeenCalledWith(PREFIX);
      expect(fake.ctx.sources.use).not.toHaveBeenCalled();
      expect(fake.ctx.jobs.update).not.toHaveBeenCalled();
    }
  });

  it("skips a range already done; a repeated delivery repairs the dispatch it may have lost", async () => {
    const plain = fakeContext(job([1, 2], { rangesDispatched: 2 }));
    await render(asContext(plain.ctx), message(2, 3), signal());
    expect(plain.ctx.sources.use).not.toHaveBeenCalled();
    expect(plain.ctx.jobs.update).not.toHaveBeenCalled();
    expect(plain.ctx.publisher.publish).not.toHaveBeenCalled();

    const repeated = fakeContext(job([1, 2], { rangesDispatched: 2 }));
    await render(asContext(repeated.ctx), message(2, 3), signal(), { repeated: true });
    expect(repeated.ctx.sources.use).not.toHaveBeenCalled();
    expect(repeated.current()).toMatchObject({ rangesDispatched: 3 });
    expect(repeated.ctx.publisher.publish.mock.calls).toEqual([[message(4, 5), { express: true }]]);
  });

  it("removes the pages it wrote when the job was deleted or canceled meanwhile", async () => {
    for (const ended of [null, job([1], { status: "canceled" })]) {
      const fake = fakeContext(job([1]));
      fake.ctx.sources.use.mockImplementationOnce(async (_key, fn) => {
        const result = await fn(fivePages);
        fake.setJob(ended);
        return result;
      });
      await render(asContext(fake.ctx), message(2, 3), signal());
      expect(fake.ctx.store.put).toHaveBeenCalledTimes(6);
      expect(fake.ctx.store.delete).toHaveBeenCalledTimes(6);
      expect(fake.objects.size).toBe(0);
      expect(fake.events()).toEqual([]);
      expect(fake.ctx.metrics.pages.inc).not.toHaveBeenCalled();
    }
  });

  it("announces nothing when another delivery marked the range done first", async () => {
    const fake = fakeContext(job([1]));
    fake.ctx.sources.use.mockImplementationOnce(async (_key, fn) => {
      const result = await fn(fivePages);
      fake.setJob(job([1, 2]));
      return result;
    });
    await render(asContext(fake.ctx), message(2, 3), signal());
    expect(fake.ctx.store.delete).not.toHaveBeenCalled();
    expect(fake.events()).toEqual([]);
    expect(fake.ctx.publisher.publish).not.toHaveBeenCalled();
  });

  it("fails (to be retried) when the document has fewer pages than the range, and marks nothing", async () => {
    const fake = fakeContext(
      job([1, 2], {
        pageCount: 7,
        ranges: [
          { first: 1, last: 1 },
          { first: 2, last: 3 },
          { first: 4, last: 7 },
        ],
      }),
    );
    const error = await rejection(render(asContext(fake.ctx), message(4, 7), signal()));
    expect((error as Error).message).toBe(`pages 6, 7 of job ${JOB_ID} were not rendered`);
    expect(fake.ctx.jobs.update).not.toHaveBeenCalled();
  });

  it("fails without a PDF to render", async () => {
    const fake = fakeContext(job([1], { pdfKey: undefined }));
    await expect(render(asContext(fake.ctx), message(2, 3), signal())).rejects.toThrow(`job ${JOB_ID} has ranges but no pdfKey`);
  });

  it("stops when its signal aborts, and marks nothing", async () => {
    const fake = fakeContext(job([1]));
    const controller = new AbortController();
    controller.abort(new Error("job canceled"));
    await expect(render(asContext(fake.ctx), message(2, 3), controller.signal)).rejects.toThrow("job canceled");
    expect(fake.ctx.store.put).not.toHaveBeenCalled();
    expect(fake.ctx.jobs.update).not.toHaveBeenCalled();
  });

  it("fails when a page cannot be stored, after every write of that page has settled", async () => {
    const fake = fakeContext(job([1]));
    let landed = 0;
    fake.ctx.store.put.mockImplementation(async (key: string) => {
      if (key.endsWith(".preview.png")) throw new Error("S3 refused the preview");
      await new Promise((r) => setTimeout(r, 30));
      landed++;
    });
    await expect(render(asContext(fake.ctx), message(2, 3), signal())).rejects.toThrow("S3 refused the preview");
    expect(landed).toBe(2); // the page's JSON and thumbnail finished before the call failed
    expect(fake.ctx.jobs.update).not.toHaveBeenCalled();
  });
});

describe("pageResult", () => {
  const sizes = [
    { page: 1, width: 612, height: 792, rotation: 0 },
    { page: 2, width: 300, height: 500, rotation: 90 },
    { page: 3, width: 300, height: 500, rotation: 180 },
    { page: 4, width: 300, height: 500, rotation: 270 },
  ];

  it("gives the size as the page is shown: 90 and 270 degrees swap width and height", () => {
    expect(pageResult(1, "one", sizes)).toEqual({ n: 1, width: 612, height: 792, text: "one" });
    expect(pageResult(2, "", sizes)).toMatchObject({ width: 500, height: 300 });
    expect(pageResult(3, "", sizes)).toMatchObject({ width: 300, height: 500 });
    expect(pageResult(4, "", sizes)).toMatchObject({ width: 500, height: 300 });
  });

  it("says 0 x 0 for a page whose size poppler did not give", () => {
    expect(pageResult(9, "text", sizes)).toEqual({ n: 9, width: 0, height: 0, text: "text" });
  });
});
