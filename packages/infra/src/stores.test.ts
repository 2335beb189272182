import { describe, expect, it } from "vitest";
import { isUnreachable, untilAvailable } from "./stores.ts";

describe("untilAvailable (a dependency that starts after us)", () => {
  it("waits while the endpoint refuses connections, then goes on", async () => {
    let calls = 0;
    const result = await untilAvailable("s3", async () => {
      calls += 1;
      if (calls < 3) throw Object.assign(new Error("connect ECONNREFUSED 10.96.0.5:7070"), { code: "ECONNREFUSED" });
      return "bucket";
    });
    expect(result).toBe("bucket");
    expect(calls).toBe(3);
  });

  it("fails at once on a refusal: bad keys are not an outage", async () => {
    let calls = 0;
    const denied = Object.assign(new Error("The AWS Access Key Id you provided does not exist"), { name: "InvalidAccessKeyId", $metadata: { httpStatusCode: 403 } });
    await expect(
      untilAvailable("s3", async () => {
        calls += 1;
        throw denied;
      }),
    ).rejects.toBe(denied);
    expect(calls).toBe(1);
  });

  it("tells outages from refusals, through wrapped causes", () => {
    expect(isUnreachable(Object.assign(new Error("x"), { code: "ENOTFOUND" }))).toBe(true);
    expect(isUnreachable(new Error("fetch failed", { cause: Object.assign(new Error("x"), { code: "ECONNRESET" }) }))).toBe(true);
    expect(isUnreachable(Object.assign(new Error("x"), { $metadata: { httpStatusCode: 503 } }))).toBe(true);
    expect(isUnreachable(Object.assign(new Error("x"), { $metadata: { httpStatusCode: 403 } }))).toBe(false);
    expect(isUnreachable(new Error("NoSuchBucket"))).toBe(false);
  });
});
