import { DeleteObjectsCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { describe, expect, it, vi } from "vitest";
import { S3ObjectStore } from "./s3.ts";

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
