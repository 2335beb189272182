import { Router, type Response } from "express";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { DocflowError, DocumentDetails, JobId, PageResult, documentKey, objectKeys, toPublicJob, type JobList, type JobRecord, type JobResult, type PageInfo, type TenantId } from "@docflow/contracts";
import { publishEvent, type ObjectStore, type Versioned } from "@docflow/infra";
import type { AppContext } from "../context.ts";

export const jobLocation = (id: string) => `/v1/jobs/${id}`;

/** Page `n` of job `id` as the API shows it: what was extracted, and where its images are. */
const pageInfo = (id: string, n: number, page: PageResult): PageInfo => ({
  ...page,
  thumbnailUrl: `/v1/jobs/${id}/pages/${n}/thumbnail`,
  previewUrl: `/v1/jobs/${id}/pages/${n}/preview`,
});

/** Sends a Job with its revision as the ETag (clients order live events by it). */
export function sendJob(res: Response, { record, revision }: Versioned): void {
  res.set("ETag", `"${revision}"`).json(toPublicJob(record));
}

const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: JobId.optional(),
});

const PageNumber = z.coerce.number().int().min(1).max(1_000_000);

/** Jobs and their results, always scoped to the caller's tenant: another tenant's id is a 404. */
export function jobsRouter(ctx: AppContext): Router {
  const router = Router();

  async function findJob(tenant: TenantId, rawId: string): Promise<Versioned> {
    const id = JobId.safeParse(rawId);
    const found = id.success ? await ctx.jobs.get(tenant, id.data) : null;
    if (!found) throw new DocflowError("not_found", "No such job.");
    return found;
  }

  function pageOf(record: JobRecord, raw: string): number {
    const n = PageNumber.safeParse(raw);
    if (!n.success || (record.pageCount !== null && n.data > record.pageCount)) throw new DocflowError("not_found", "No such page.");
    return n.data;
  }

  router.get("/v1/jobs", async (req, res) => {
    const query = ListQuery.parse(req.query);
    const records = await ctx.jobs.list(res.locals.tenant, { limit: query.limit + 1, after: query.cursor });
    const items = records.slice(0, query.limit).map(toPublicJob);
    res.json({ items, nextCursor: records.length > query.limit ? (items.at(-1)?.id ?? null) : null } satisfies JobList);
  });

  router.get("/v1/jobs/:id", async (req, res) => {
    sendJob(res, await findJob(res.locals.tenant, req.params.id));
  });

  router.delete("/v1/jobs/:id", async (req, res) => {
    const tenant = res.locals.tenant as TenantId;
    const { record } = await findJob(tenant, req.params.id);
    const canceled = await ctx.jobs.update(tenant, record.id, (r) => (r.status === "canceled" ? null : { ...r, status: "canceled" }));
    if (canceled) {
      publishEvent(ctx.nats, tenant, { type: "job.canceled", jobId: record.id, revision: canceled.revision, at: new Date().toISOString(), job: toPublicJob(canceled.record) });
    }
    await ctx.store.deletePrefix(objectKeys.jobPrefix(tenant, record.id));
    await ctx.jobs.delete(tenant, record.id);
    res.status(204).end();
  });

  router.get("/v1/jobs/:id/result", async (req, res) => {
    const tenant = res.locals.tenant as TenantId;
    const found = await findJob(tenant, req.params.id);
    const { record } = found;
    if (record.status !== "completed") {
      throw new DocflowError("job_not_ready", `The job is ${record.status}; the result is available once it is completed.`, { extra: { jobStatus: record.status } });
    }
    const pages = await mapLimit(
      Array.from({ length: record.pageCount ?? 0 }, (_, i) => i + 1),
      16,
      async (n) => {
        const page = await readPage(ctx.store, tenant, record.id, n);
        if (!page) throw new Error(`job ${record.id} is completed but page ${n} is missing`);
        return pageInfo(record.id, n, page);
      },
    );
    // What inspection found in full (e.g. a presentation's slide titles and notes); absent for jobs inspected before it was stored.
    const document = await readJson(ctx.store, documentKey(tenant, record.id), DocumentDetails);
    res.set("ETag", `"${found.revision}"`).json({ job: toPublicJob(record), pages, ...(document ? { document } : {}) } satisfies JobResult);
  });

  router.get("/v1/jobs/:id/pages/:n", async (req, res) => {
    const tenant = res.locals.tenant as TenantId;
    const { record } = await findJob(tenant, req.params.id);
    const n = pageOf(record, req.params.n);
    const page = await readPage(ctx.store, tenant, record.id, n);
    if (!page) throw new DocflowError("page_not_ready");
    res.json(pageInfo(record.id, n, page));
  });

  const streamObject = (kind: "thumbnail" | "preview") => async (req: { params: { id: string; n: string } }, res: Response) => {
    const tenant = res.locals.tenant as TenantId;
    const { record } = await findJob(tenant, req.params.id);
    const n = pageOf(record, req.params.n);
    const key = kind === "thumbnail" ? objectKeys.pageThumbnail(tenant, record.id, n) : objectKeys.pagePreview(tenant, record.id, n);
    const object = await ctx.store.get(key);
    if (!object) throw new DocflowError("page_not_ready");
    res.set({
      "Content-Type": kind === "thumbnail" ? "image/webp" : "image/png",
      "Content-Length": String(object.size),
      "Cache-Control": "private, max-age=86400, immutable",
    });
    await pipeline(object.body, res);
  };
  router.get("/v1/jobs/:id/pages/:n/thumbnail", streamObject("thumbnail"));
  router.get("/v1/jobs/:id/pages/:n/preview", streamObject("preview"));

  router.get("/v1/jobs/:id/source", async (req, res) => {
    const tenant = res.locals.tenant as TenantId;
    const { record } = await findJob(tenant, req.params.id);
    const object = await ctx.store.get(record.sourceKey);
    if (!object) throw new DocflowError("not_found", "The source document is no longer stored.");
    res.set({
      "Content-Type": record.contentType,
      "Content-Length": String(object.size),
      "Content-Disposition": `attachment; filename="${record.filename.replace(/[^\x20-\x7e]|["\\]/g, "_")}"; filename*=UTF-8''${encodeURIComponent(record.filename)}`,
    });
    if (record.sha256) res.set("Digest", `sha-256=${Buffer.from(record.sha256, "hex").toString("base64")}`);
    await pipeline(object.body, res);
  });

  return router;
}

async function readPage(store: ObjectStore, tenant: TenantId, id: string, n: number): Promise<PageResult | null> {
  return readJson(store, objectKeys.pageJson(tenant, id, n), PageResult);
}

async function readJson<T>(store: ObjectStore, key: string, schema: z.ZodType<T>): Promise<T | null> {
  const object = await store.get(key);
  if (!object) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of object.body) chunks.push(chunk as Buffer);
  return schema.parse(JSON.parse(Buffer.concat(chunks).toString("utf8")));
}

/** Maps with at most `limit` calls in flight, keeping order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
