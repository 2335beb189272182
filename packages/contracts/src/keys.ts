import type { JobId, TenantId } from "./ids.ts";

/** Object keys. Every key of a job lives under its tenant's prefix. */
export const objectKeys = {
  jobPrefix: (tenant: TenantId, job: JobId) => `tenants/${tenant}/jobs/${job}/`,
  source: (tenant: TenantId, job: JobId) => `tenants/${tenant}/jobs/${job}/source`,
  convertedPdf: (tenant: TenantId, job: JobId) => `tenants/${tenant}/jobs/${job}/source.pdf`,
  pageJson: (tenant: TenantId, job: JobId, n: number) => `tenants/${tenant}/jobs/${job}/pages/${n}.json`,
  pageThumbnail: (tenant: TenantId, job: JobId, n: number) => `tenants/${tenant}/jobs/${job}/pages/${n}.thumb.webp`,
  pagePreview: (tenant: TenantId, job: JobId, n: number) => `tenants/${tenant}/jobs/${job}/pages/${n}.preview.png`,
} as const;

/** Job-record keys in the KV bucket: `<tenant>.<job>`, so one tenant's jobs list with `<tenant>.>`. */
export const recordKey = (tenant: TenantId, job: JobId) => `${tenant}.${job}`;
