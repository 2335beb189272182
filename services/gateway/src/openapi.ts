import { z } from "zod";
import { ClientConfig, DocumentDetails, ERRORS, Job, JobList, JobResult, PageInfo, Problem, RealtimeCredentials, type ProblemCode } from "@docflow/contracts";

/** The schemas of the document (`#/components/schemas/<name>`): the contracts' zod schemas, by their names here. */
const COMPONENTS = { Job, Page: PageInfo, Document: DocumentDetails, JobList, JobResult, RealtimeCredentials, ClientConfig, Problem };
type Component = keyof typeof COMPONENTS;

/**
 * The components as OpenAPI 3.0 Schema Objects (zod's `openapi-3.0` target: `nullable`, boolean
 * `exclusiveMinimum`), as the answers are written (`io: "output"`). A component inside another is a
 * `$ref` to it.
 */
function componentSchemas(): Record<string, object> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(COMPONENTS)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, { target: "openapi-3.0", io: "output", uri: (id) => `#/components/schemas/${id}` });
  // `$id` is JSON Schema's, no keyword of an OpenAPI 3.0 Schema Object: a component is named by its key.
  return Object.fromEntries(Object.entries(schemas).map(([id, { $id: _id, ...schema }]) => [id, schema]));
}

const ref = (name: Component) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: Component) => ({ "application/json": { schema: ref(name) } });

/** The problem responses of an operation: one per status, naming each code the operation may answer with it. */
function problems(...codes: ProblemCode[]) {
  const byStatus = Map.groupBy(codes, (code) => ERRORS[code].status);
  return Object.fromEntries(
    [...byStatus].map(([status, same]) => [
      String(status),
      { description: same.map((code) => `${ERRORS[code].title} (code: ${code})`).join("; "), content: { "application/problem+json": { schema: ref("Problem") } } },
    ]),
  );
}

const jobId = { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } };
const pageN = { name: "n", in: "path", required: true, schema: { type: "integer", minimum: 1 } };

/** The OpenAPI 3.0 document served at `/v1/openapi.json`; its schemas are generated from the contracts package. */
export function openApiDocument(maxUploadBytes: number) {
  return {
    openapi: "3.0.3",
    info: { title: "docflow API", version: "1.0.0", description: "Upload PDF and PPTX documents and read per-page text and images." },
    servers: [{ url: "/" }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: componentSchemas(),
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
            "202": { description: "Stored and queued", headers: { Location: { schema: { type: "string" } } }, content: json("Job") },
            ...problems("empty_body", "missing_file", "validation_failed", "unauthorized", "file_too_large", "unsupported_media_type", "too_many_uploads", "not_ready"),
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
            "200": { description: "A page of jobs", content: json("JobList") },
            ...problems("unauthorized", "validation_failed"),
          },
        },
      },
      "/v1/jobs/{id}": {
        parameters: [jobId],
        get: { summary: "One job (ETag: its revision)", responses: { "200": { description: "The job", content: json("Job") }, ...problems("unauthorized", "not_found") } },
        delete: { summary: "Cancel and delete the job and its objects", responses: { "204": { description: "Deleted" }, ...problems("unauthorized", "not_found") } },
      },
      "/v1/jobs/{id}/result": {
        parameters: [jobId],
        get: {
          summary: "All pages of a completed job",
          responses: {
            "200": { description: "Result", content: json("JobResult") },
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
        get: { summary: "One page's text and links", responses: { "200": { description: "Page", content: json("Page") }, ...problems("unauthorized", "not_found", "page_not_ready") } },
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
              content: json("RealtimeCredentials"),
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
        get: { summary: "Client configuration (limits)", security: [], responses: { "200": { description: "Configuration", content: json("ClientConfig") } } },
      },
      "/healthz": { get: { summary: "Liveness", security: [], responses: { "200": { description: "The process and its event loop answer" } } } },
      "/readyz": { get: { summary: "Readiness", security: [], responses: { "200": { description: "Ready" }, ...problems("not_ready") } } },
      "/metrics": { get: { summary: "Prometheus metrics", security: [], responses: { "200": { description: "Metrics" } } } },
    },
  };
}
