import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { FsObjectStore, S3ObjectStore } from "@docflow/infra";
import { objectStoreConformance } from "../support/object-store-conformance.ts";
import { testServices, uniqueName } from "../support/env.ts";

objectStoreConformance("filesystem", async () => new FsObjectStore(await mkdtemp(join(tmpdir(), "docflow-fs-store-"))));

objectStoreConformance("s3 (real server)", async () => {
  const { s3 } = testServices();
  const store = new S3ObjectStore({
    bucket: uniqueName("conf"),
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    partSize: 5 * 1024 * 1024,
  });
  await store.ensureBucket();
  return store;
});

describe("the S3 server the suite trusts", () => {
  it("refuses a request signed with the wrong secret (it verifies SigV4)", async () => {
    const { s3 } = testServices();
    const bucket = uniqueName("sig");
    await new S3ObjectStore({ bucket, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } }).ensureBucket();
    const forged = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: `${s3.secretAccessKey}x` },
    });
    const err = await forged.send(new PutObjectCommand({ Bucket: bucket, Key: "k", Body: "x" })).catch((e: unknown) => e);
    expect(err).toMatchObject({ $metadata: { httpStatusCode: 403 } });
    expect((err as Error).name).toMatch(/SignatureDoesNotMatch|AccessDenied/);
  });

  it("stores what the default-configured SDK sends byte for byte (no aws-chunked framing)", async () => {
    const { s3 } = testServices();
    const bucket = uniqueName("bytes");
    const store = new S3ObjectStore({ bucket, endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    await store.ensureBucket();
    const body = Buffer.from("%PDF-1.7\n" + "x".repeat(100_000));
    await store.client.send(new PutObjectCommand({ Bucket: bucket, Key: "raw", Body: body }));
    const got = await store.client.send(new GetObjectCommand({ Bucket: bucket, Key: "raw" }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
  });
});
