import { SpanKind, SpanStatusCode, context, propagation, trace, type Span } from "@opentelemetry/api";

/**
 * One span per file upload, the parent of every request of that upload (the tus creation, each
 * chunk, the final one that creates the job), so that an upload and all its processing form one
 * trace. tus-js-client sends its requests from callbacks where the browser has no async context to
 * carry a parent, so the `traceparent` of each request is written here, from the upload's span,
 * and the XMLHttpRequest instrumentation leaves `/v1/uploads` alone (see telemetry/browser.ts).
 * With tracing off (no SDK registered) the API is a no-op: no span, no header.
 */
export class UploadSpans {
  readonly #spans = new Map<string, Span>();

  /** The trace headers for a request of the upload of `fileId` (its span starts with the first). */
  headersFor(fileId: string, name: string, size: number | null): Record<string, string> {
    let span = this.#spans.get(fileId);
    if (!span) {
      span = trace.getTracer("docflow-web").startSpan(`upload ${name}`, {
        kind: SpanKind.CLIENT,
        attributes: { "docflow.upload.filename": name, ...(size !== null ? { "docflow.upload.size": size } : {}) },
      });
      this.#spans.set(fileId, span);
    }
    const headers: Record<string, string> = {};
    propagation.inject(trace.setSpan(context.active(), span), headers);
    return headers;
  }

  /** Ends the upload's span: `error` when it failed or was canceled. */
  end(fileId: string, outcome: { jobId?: string | null; error?: string }): void {
    const span = this.#spans.get(fileId);
    if (!span) return;
    this.#spans.delete(fileId);
    if (outcome.jobId) span.setAttribute("docflow.job.id", outcome.jobId);
    if (outcome.error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error });
    span.end();
  }
}
