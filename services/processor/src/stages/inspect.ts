import { join } from "node:path";
import { DocflowError, PDF, TERMINAL_STATUSES, DocumentDetails, documentKey, toPublicJob, type DocumentInfo, type InspectMessage, type JobRecord } from "@docflow/contracts";
import { publishEvent } from "@docflow/infra";
import type { ProcessorContext } from "../context.ts";
import { advanceWindow, publishRanges, resumeDispatch } from "../dispatch.ts";
import { PREVIEW_DPI, countFontsAndImages, inspectPdf, pageSizes, type PdfPageSize } from "../engines/index.ts";
import { readPptx } from "../engines/pptx-info.ts";
import { download, downloadHashed, withWorkdir } from "../workdir.ts";
import { splitRanges } from "./split.ts";

/**
 * Inspect a stored document. A PPTX not yet converted: read its OOXML under
 * the zip-bomb limits (title, author, slide titles and notes) and send it to
 * `convert`, which comes back here with its PDF. A PDF: page count, sizes,
 * metadata, encryption, JavaScript; enforce the page and pixel limits; record
 * the ranges and dispatch the first window of them. Safe to redeliver: a job
 * that already has its ranges only gets its dispatch repaired.
 */
export async function inspect(ctx: ProcessorContext, message: InspectMessage, signal: AbortSignal): Promise<void> {
  const { tenant, jobId } = message;
  const current = await ctx.jobs.get(tenant, jobId);
  if (!current || TERMINAL_STATUSES.has(current.record.status)) {
    ctx.log.info({ jobId, status: current?.record.status ?? "deleted" }, "inspect skipped: job gone or finished");
    return;
  }
  const record = current.record;
  if (record.ranges.length > 0) return resumeDispatch(ctx, tenant, jobId);
  if (record.contentType !== PDF && record.pdfKey === undefined) return inspectPresentation(ctx, record, signal);
  return inspectDocument(ctx, record, signal);
}

/** Records the source's SHA-256 where the upload did not (resumable uploads), before any engine runs. */
async function recordHash(ctx: ProcessorContext, record: JobRecord, sha256: string): Promise<void> {
  if (record.sha256 !== null) return;
  await ctx.jobs.update(record.tenant, record.id, (r) => (r.sha256 === null ? { ...r, sha256 } : null));
}

async function inspectPresentation(ctx: ProcessorContext, record: JobRecord, signal: AbortSignal): Promise<void> {
  const { tenant, id: jobId } = record;
  const { config } = ctx;
  const info = await withWorkdir(config.DOCFLOW_WORK_DIR, async (dir) => {
    const source = join(dir, "source.pptx");
    await recordHash(ctx, record, await downloadHashed(ctx.store, record.sourceKey, source));
    signal.throwIfAborted();
    return readPptx(source, { maxUncompressedBytes: config.DOCFLOW_PPTX_MAX_UNCOMPRESSED_BYTES, maxEntries: config.DOCFLOW_PPTX_MAX_ENTRIES, signal });
  });
  if (info.slides.length > config.DOCFLOW_MAX_PAGES) {
    throw new DocflowError("document_too_many_pages", `The presentation has ${info.slides.length} slides; at most ${config.DOCFLOW_MAX_PAGES} are allowed.`);
  }
  const document: DocumentInfo = {
    ...(info.title !== undefined ? { title: info.title } : {}),
    ...(info.author !== undefined ? { author: info.author } : {}),
    encrypted: false,
    javascript: false,
    slideCount: info.slides.length,
  };
  // Slide titles and notes can be long: they live in an object, not in the KV record.
  const details: DocumentDetails = { ...document, slides: info.slides };
  await ctx.store.put(documentKey(tenant, jobId), Buffer.from(JSON.stringify(DocumentDetails.parse(details))), { contentType: "application/json" });
  const updated = await ctx.jobs.update(tenant, jobId, (r) => (TERMINAL_STATUSES.has(r.status) || r.pdfKey !== undefined ? null : { ...r, status: "processing", document }));
  if (!updated || updated.record.status === "canceled") {
    // Deleted while we read it: the gateway already removed the job's objects, so remove ours.
    await ctx.store.delete(documentKey(tenant, jobId)).catch(() => {});
    return;
  }
  if (updated.changed && record.status === "queued") {
    publishEvent(ctx.nats, tenant, { type: "job.started", jobId, revision: updated.revision, at: new Date().toISOString(), job: toPublicJob(updated.record), pageCount: null });
  }
  if (TERMINAL_STATUSES.has(updated.record.status)) return;
  await ctx.publisher.publish({ v: 1, stage: "convert", tenant, jobId });
  ctx.log.info({ jobId, slides: info.slides.length, hidden: info.hiddenSlides }, "presentation inspected; sent to convert");
}

async function inspectDocument(ctx: ProcessorContext, record: JobRecord, signal: AbortSignal): Promise<void> {
  const { config } = ctx;
  const pdfKey = record.pdfKey ?? record.sourceKey;
  await withWorkdir(config.DOCFLOW_WORK_DIR, async (dir) => {
    const path = join(dir, "document.pdf");
    if (pdfKey === record.sourceKey) await recordHash(ctx, record, await downloadHashed(ctx.store, pdfKey, path));
    else await download(ctx.store, pdfKey, path);
    // The ranges are rendered from the same bytes: the ones this processor takes need no download.
    await ctx.sources.adopt(pdfKey, path);
    signal.throwIfAborted();
    const call = { timeoutMs: config.DOCFLOW_TASK_TIMEOUT_MS, signal, maxMemoryBytes: config.DOCFLOW_ENGINE_MAX_MEMORY_BYTES };
    // The page count first: a document over the limit is refused before its pages are listed.
    const summary = await inspectPdf(path, call);
    checkLimits(ctx, summary.pageCount, []);
    // Fonts and images are informational and take about a second on a large document (pdffonts
    // and pdfimages read all of it): they are counted alongside, and recorded after the ranges
    // are out, so page 1 never waits for them. A document they cannot be listed for is still
    // processed.
    const counting = countFontsAndImages(path, call).catch((err: unknown) => {
      if (!signal.aborted) ctx.log.warn({ err, jobId: record.id }, "could not count fonts and images");
      return undefined;
    });
    try {
      const sizes = await pageSizes(path, 1, summary.pageCount, { ...call, maxOutputBytes: 128 * summary.pageCount + 64 * 1024 });
      checkLimits(ctx, summary.pageCount, sizes);
      const dispatched = await recordAndDispatch(ctx, record, pdfKey, summary);
      const counts = await counting;
      if (dispatched && counts) await recordCounts(ctx, record, counts);
    } finally {
      await counting; // its child reads the work dir, which goes next
    }
  });
}

/** Records the ranges and what inspect found, then dispatches the first window. False when another delivery, or a deletion, came first. */
async function recordAndDispatch(ctx: ProcessorContext, record: JobRecord, pdfKey: string, info: Awaited<ReturnType<typeof inspectPdf>>): Promise<boolean> {
  const { tenant, id: jobId } = record;
  const { config } = ctx;
  const fromPdf: DocumentInfo = {
    ...(info.title !== undefined ? { title: info.title.slice(0, 1000) } : {}),
    ...(info.author !== undefined ? { author: info.author.slice(0, 1000) } : {}),
    ...(info.pdfVersion !== undefined ? { pdfVersion: info.pdfVersion } : {}),
    encrypted: info.encrypted,
    javascript: info.javascript,
  };
  // A presentation's own title and author (core properties) win over what LibreOffice put in the PDF.
  const document: DocumentInfo = { ...fromPdf, ...record.document, encrypted: info.encrypted, javascript: info.javascript };
  for (const key of ["pdfVersion", "fontCount", "imageCount"] as const) {
    if (fromPdf[key] === undefined) delete document[key];
    else Object.assign(document, { [key]: fromPdf[key] });
  }
  // The full details: for a presentation, the slides read before conversion, with what its PDF showed.
  const slides = record.contentType === PDF ? undefined : (await readDetails(ctx, tenant, jobId))?.slides;
  const details: DocumentDetails = { ...document, ...(slides ? { slides } : {}) };
  await ctx.store.put(documentKey(tenant, jobId), Buffer.from(JSON.stringify(DocumentDetails.parse(details))), { contentType: "application/json" });

  const ranges = splitRanges(info.pageCount, config.DOCFLOW_FIRST_RANGE_SIZE, config.DOCFLOW_RANGE_SIZE);
  const updated = await ctx.jobs.update(tenant, jobId, (r): JobRecord | null => {
    if (TERMINAL_STATUSES.has(r.status) || r.ranges.length > 0) return null;
    const next: JobRecord = { ...r, status: "processing", pdfKey, pageCount: info.pageCount, ranges, rangesDone: [], pagesDone: 0, rangesDispatched: 0, document };
    next.rangesDispatched = advanceWindow(next, config.DOCFLOW_RANGE_WINDOW);
    return next;
  });
  if (!updated || updated.record.status === "canceled") {
    await ctx.store.delete(documentKey(tenant, jobId)).catch(() => {});
    return false;
  }
  if (TERMINAL_STATUSES.has(updated.record.status)) return false;
  if (!updated.changed) {
    await resumeDispatch(ctx, tenant, jobId); // another delivery split it first
    return false;
  }
  const at = new Date().toISOString();
  if (record.status === "queued") {
    publishEvent(ctx.nats, tenant, { type: "job.started", jobId, revision: updated.revision, at, job: toPublicJob(updated.record), pageCount: info.pageCount });
  } else {
    publishEvent(ctx.nats, tenant, { type: "job.progress", jobId, revision: updated.revision, at, job: toPublicJob(updated.record), pagesDone: 0, pageCount: info.pageCount });
  }
  await publishRanges(ctx, updated.record, updated.record.ranges.slice(0, updated.record.rangesDispatched));
  ctx.log.info({ jobId, pageCount: info.pageCount, ranges: ranges.length, dispatched: updated.record.rangesDispatched }, "inspected; ranges dispatched");
  return true;
}

/** Adds the font and image counts to the job's document, record and details, unless the job is gone or canceled meanwhile. */
async function recordCounts(ctx: ProcessorContext, record: JobRecord, counts: { fonts: number; images: number }): Promise<void> {
  const { tenant, id: jobId } = record;
  const updated = await ctx.jobs.update(tenant, jobId, (r): JobRecord | null =>
    r.status === "canceled" || r.status === "failed" || !r.document ? null : { ...r, document: { ...r.document, fontCount: counts.fonts, imageCount: counts.images } },
  );
  if (!updated?.changed) return;
  const details = await readDetails(ctx, tenant, jobId);
  if (!details) return; // deleted meanwhile
  await ctx.store.put(documentKey(tenant, jobId), Buffer.from(JSON.stringify(DocumentDetails.parse({ ...details, fontCount: counts.fonts, imageCount: counts.images }))), {
    contentType: "application/json",
  });
  // A deletion between the two writes: leave nothing behind.
  const now = await ctx.jobs.get(tenant, jobId);
  if (!now || now.record.status === "canceled") await ctx.store.delete(documentKey(tenant, jobId)).catch(() => {});
}

async function readDetails(ctx: ProcessorContext, tenant: JobRecord["tenant"], jobId: JobRecord["id"]): Promise<DocumentDetails | null> {
  const object = await ctx.store.get(documentKey(tenant, jobId));
  if (!object) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of object.body) chunks.push(chunk as Buffer);
  return DocumentDetails.parse(JSON.parse(Buffer.concat(chunks).toString("utf8")));
}

/** The document limits: page count, and the pixels of the largest image rendered for a page (the preview). */
function checkLimits(ctx: ProcessorContext, pageCount: number, pages: PdfPageSize[]): void {
  const { DOCFLOW_MAX_PAGES: maxPages, DOCFLOW_MAX_RENDER_PIXELS: maxPixels } = ctx.config;
  if (pageCount > maxPages) {
    throw new DocflowError("document_too_many_pages", `The document has ${pageCount} pages; at most ${maxPages} are allowed.`);
  }
  for (const page of pages) {
    const pixels = Math.ceil((page.width * PREVIEW_DPI) / 72) * Math.ceil((page.height * PREVIEW_DPI) / 72);
    if (pixels > maxPixels) {
      const inches = (pt: number) => (pt / 72).toFixed(0);
      throw new DocflowError(
        "page_too_large",
        `Page ${page.page} measures ${inches(page.width)} x ${inches(page.height)} inches: ${(pixels / 1e6).toFixed(0)} million pixels at ${PREVIEW_DPI} DPI, more than the ${(maxPixels / 1e6).toFixed(0)} million allowed.`,
      );
    }
  }
}
