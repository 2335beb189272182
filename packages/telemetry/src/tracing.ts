import { context, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";

const tracer = () => trace.getTracer("docflow");

/**
 * Runs `fn` in a new active span named `name` (bullmq's `trace()` shape):
 * exceptions are recorded and rethrown, and the span always ends.
 */
export async function withSpan<T>(name: string, options: { kind?: SpanKind; attributes?: Attributes; parent?: Context }, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes ?? {} }, options.parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      throw failed(span, err);
    } finally {
      span.end();
    }
  });
}

/** `withSpan` for synchronous work (a fire-and-forget publish): the span ends when `fn` returns. */
export function withSyncSpan<T>(name: string, options: { kind?: SpanKind; attributes?: Attributes }, fn: (span: Span) => T): T {
  return tracer().startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes ?? {} }, (span) => {
    try {
      return fn(span);
    } catch (err) {
      throw failed(span, err);
    } finally {
      span.end();
    }
  });
}

/** Marks `span` as failed with `err` (recorded as its exception); returns `err` to rethrow. */
function failed(span: Span, err: unknown): unknown {
  span.recordException(err as Error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
  return err;
}

/** W3C trace context of the active span, as message headers (AMQP, NATS). */
export function injectContext(headers: Record<string, string> = {}): Record<string, string> {
  propagation.inject(context.active(), headers);
  return headers;
}

/** The context carried in message headers (for the consumer span's parent). */
export function extractContext(headers: Record<string, unknown> | undefined): Context {
  const carrier: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {}))
    if (typeof v === "string") carrier[k] = v;
    else if (Buffer.isBuffer(v)) carrier[k] = v.toString();
  return propagation.extract(context.active(), carrier);
}

export { SpanKind };
