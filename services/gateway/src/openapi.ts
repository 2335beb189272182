import { z } from "zod";
import { DocumentDetails, ERRORS, Job, PageResult } from "@docflow/contracts";

const schema = (s: z.ZodType) => z.toJSONSchema(s, { target: "openapi-3.0", io: "output" });
const problem = { $ref: "#/components/schemas/Problem" };
const json = (s: unknown) => ({ "application/json": { schema: s } });
const problems = (...codes: (keyof typeof ERRORS)[]) =>
  Object.fromEntries(
    codes.map((c) => [String(ERRORS[c].status), { description: `${ERRORS[c].title} (code: ${c})`, content: { "application/problem+json": { schema: problem } } }]),
  );
const jobId = { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } };
const pageN = { name: "n", in: "path", required: true, schema: { type: "integer", minimum: 1 } };
const pageWithLinks = {
  allOf: [{ $ref: "#/components/schemas/Page" }, { type: "object", properties: { thumbnailUrl: { type: "string" }, previewUrl: { type: "string" } } }],
};

/** The OpenAPI 3.0 document served at `/v1/openapi.json`; schemas come from the contracts package. */
export function openApiDocument(maxUploadBytes: number) {
  return {
    openapi: "3.0.3",
    info: { title: "docflow API", version: "1.0.0", description: "Upload PDF and PPTX documents and read per-page text and images." },
    servers: [{ url: "/" }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: {
        Job: schema(Job),
        Page: schema(PageResult),
        Document: schema(DocumentDetails),
        Problem: {
          type: "object",
          required: ["type", "title", "status", "code"],
          properties: {
            type: { type: "string" },
            title: { type: "string" },
            status: { type: "integer" },
            detail: { type: "string" },
            code: { type: "string", enum: Object.keys(ERRORS) },
            instance: { type: "string" },
          },
        },
      },
    },
    paths: {
      "/v1/documents": {
        post: {
          summary: "Upload one document (streamed)",
          parameters: [{ name: "filename", in: "query", schema: { type: "string", maxLength: 255 } }],
          requestBody: {
            required: true,
            description: `A PDF or PPTX, at most ${maxUploadBytes} bytes: the raw body, or the multipart field \`file\`. The type is judged by content.`,
            content: {
              "application/pdf": { schema: { type: "string", format: "binary" } },
              "application/octet-stream": { schema: { type: "string", format: "binary" } },
              "multipart/form-data": { schema: { type: "object", required: ["file"], properties: { file: { type: "string", format: "binary" } } } },
            },
          },
          responses: {
            "202": { description: "Stored and queued", headers: { Location: { schema: { type: "string" } } }, content: json({ $ref: "#/components/schemas/Job" }) },
            ...problems("empty_body", "unauthorized", "file_too_large", "unsupported_media_type", "not_ready"),
          },
        },
      },
      "/v1/jobs": {
        get: {
          summary: "The caller's jobs, newest first",
          parameters: [
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 100, default: 20 } },
            { name: "cursor", in: "query", schema: { type: "string" }, description: "nextCursor of the previous page" },
          ],
          responses: {
            "200": {
              description: "A page of jobs",
              content: json({ type: "object", properties: { items: { type: "array", items: { $ref: "#/components/schemas/Job" } }, nextCursor: { type: "string", nullable: true } } }),
            },
            ...problems("unauthorized", "validation_failed"),
          },
        },
      },
      "/v1/jobs/{id}": {
        parameters: [jobId],
        get: { summary: "One job (ETag: its revision)", responses: { "200": { description: "The job", content: json({ $ref: "#/components/schemas/Job" }) }, ...problems("unauthorized", "not_found") } },
        delete: { summary: "Cancel and delete the job and its objects", responses: { "204": { description: "Deleted" }, ...problems("unauthorized", "not_found") } },
      },
      "/v1/jobs/{id}/result": {
        parameters: [jobId],
        get: {
          summary: "All pages of a completed job",
          responses: {
            "200": { description: "Result", content: json({ type: "object", properties: { job: { $ref: "#/components/schemas/Job" }, pages: { type: "array", items: pageWithLinks }, document: { $ref: "#/components/schemas/Document" } } }) },
            ...problems("unauthorized", "not_found", "job_not_ready"),
          },
        },
      },
      "/v1/jobs/{id}/source": {
        parameters: [jobId],
        get: { summary: "Download the uploaded document", responses: { "200": { description: "The original bytes" }, ...problems("unauthorized", "not_found") } },
      },
      "/v1/jobs/{id}/pages/{n}": {
        parameters: [jobId, pageN],
        get: { summary: "One page's text and links", responses: { "200": { description: "Page", content: json(pageWithLinks) }, ...problems("unauthorized", "not_found") } },
      },
      "/v1/jobs/{id}/pages/{n}/thumbnail": {
        parameters: [jobId, pageN],
        get: { summary: "Page thumbnail, ~200 px wide", responses: { "200": { description: "WebP", content: { "image/webp": {} } }, ...problems("unauthorized", "not_found") } },
      },
      "/v1/jobs/{id}/pages/{n}/preview": {
        parameters: [jobId, pageN],
        get: { summary: "Page preview at 150 DPI", responses: { "200": { description: "PNG", content: { "image/png": {} } }, ...problems("unauthorized", "not_found") } },
      },
      "/v1/realtime/credentials": {
        post: {
          summary: "Short-lived NATS WebSocket credentials: subscribe to the caller's tenant events only",
          responses: {
            "200": {
              description: "Connect with wsconnect({ servers: url, authenticator: jwtAuthenticator(jwt) }) and subscribe to subject",
              content: json({
                type: "object",
                required: ["url", "jwt", "subject", "expiresAt"],
                properties: { url: { type: "string" }, jwt: { type: "string" }, subject: { type: "string" }, expiresAt: { type: "string", format: "date-time" } },
              }),
            },
            ...problems("unauthorized", "realtime_unavailable"),
          },
        },
      },
      "/v1/telemetry/traces": {
        post: {
          summary: "Browser trace spans (OTLP/HTTP, JSON or protobuf), forwarded to the OpenTelemetry Collector",
          requestBody: { required: true, content: { "application/json": {}, "application/x-protobuf": {} } },
          responses: {
            "204": { description: "Forwarded" },
            ...problems("unauthorized", "telemetry_unavailable", "telemetry_batch_too_large", "telemetry_unsupported_media_type", "collector_unavailable"),
          },
        },
      },
      "/v1/config": {
        get: { summary: "Client configuration (limits)", security: [], responses: { "200": { description: "Configuration" } } },
      },
      "/healthz": { get: { summary: "Liveness", security: [], responses: { "200": { description: "The process and its event loop answer" } } } },
      "/readyz": { get: { summary: "Readiness", security: [], responses: { "200": { description: "Ready" }, ...problems("not_ready") } } },
      "/metrics": { get: { summary: "Prometheus metrics", security: [], responses: { "200": { description: "Metrics" } } } },
    },
  };
}
