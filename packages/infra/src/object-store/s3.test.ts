import { Readable } from "node:stream";
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { describe, expect, it, vi } from "vitest";
import { S3ObjectStore, closeAfterChunkedBodies, s3ClientConfig } from "./s3.ts";

/** A store whose S3 answers are given: listing `keys`, and DeleteObjects reporting `errors`. */
function storeAnswering(keys: string[], errors: { Key: string; Code: string }[]) {
  const store = new S3ObjectStore({ bucket: "b", region: "us-east-1", endpoint: "http://127.0.0.1:1", credentials: { accessKeyId: "a", secretAccessKey: "s" } });
  vi.spyOn(store.client, "send").mockImplementation(async (command: unknown) => {
    if (command instanceof ListObjectsV2Command) return { Contents: keys.map((Key) => ({ Key })), IsTruncated: false };
    if (command instanceof DeleteObjectsCommand) return { Errors: errors };
    throw new Error("unexpected command");
  });
  return store;
}

describe("S3ObjectStore.deletePrefix", () => {
  it("counts a key another remover deleted after the listing (NoSuchKey) as gone, not as a failure", async () => {
    const store = storeAnswering(["t/jobs/j/pages/1.json", "t/jobs/j/pages/2.json", "t/jobs/j/source"], [{ Key: "t/jobs/j/pages/2.json", Code: "NoSuchKey" }]);
    await expect(store.deletePrefix("t/jobs/j/")).resolves.toBe(2);
  });

  it("fails on any other refusal, naming the code and a key", async () => {
    const store = storeAnswering(["t/jobs/j/source"], [{ Key: "t/jobs/j/source", Code: "AccessDenied" }]);
    await expect(store.deletePrefix("t/jobs/j/")).rejects.toThrow(/refused to delete 1 objects under t\/jobs\/j\/: AccessDenied \(t\/jobs\/j\/source\)/);
  });
});

describe("closeAfterChunkedBodies", () => {
  /** A client whose HTTP handler records the headers each request would go out with, and answers 200. */
  function recordingClient() {
    const sent: Record<string, string>[] = [];
    const requestHandler = {
      handle: async (request: { headers: Record<string, string>; body?: unknown }) => {
        sent.push({ ...request.headers });
        if (request.body instanceof Readable) request.body.resume();
        return { response: { statusCode: 200, headers: { etag: '"e"' }, body: Readable.from([]) } };
      },
    };
    const client = new S3Client({
      ...s3ClientConfig({ region: "us-east-1", endpoint: "http://127.0.0.1:1", credentials: { accessKeyId: "a", secretAccessKey: "s" } }),
      requestHandler,
      maxAttempts: 1,
    });
    closeAfterChunkedBodies(client);
    return { client, sent };
  }

  it("closes the connection after a part sent as aws-chunked with a trailing checksum", async () => {
    const { client, sent } = recordingClient();
    await client.send(new UploadPartCommand({ Bucket: "b", Key: "k", UploadId: "u", PartNumber: 1, Body: Readable.from([Buffer.alloc(10_000)]), ContentLength: 10_000, ChecksumAlgorithm: "CRC32" }));
    expect(sent[0]).toMatchObject({ "transfer-encoding": "chunked", connection: "close" });
  });

  it("closes it after a stream of unknown length, and keeps it for bodies with a length", async () => {
    const { client, sent } = recordingClient();
    await client.send(new PutObjectCommand({ Bucket: "b", Key: "k", Body: Readable.from([Buffer.alloc(10)]) })).catch(() => {});
    await client.send(new PutObjectCommand({ Bucket: "b", Key: "k", Body: Buffer.alloc(10) }));
    await client.send(new UploadPartCommand({ Bucket: "b", Key: "k", UploadId: "u", PartNumber: 1, Body: Readable.from([Buffer.alloc(10)]), ContentLength: 10 }));
    expect(sent.map((h) => h.connection ?? "keep")).toEqual(["close", "keep", "keep"]);
  });
});
