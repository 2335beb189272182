import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OfficeSlots } from "./office-slots.ts";

describe("OfficeSlots: one LibreOffice profile per concurrent conversion", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "docflow-slots-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("never gives one profile to two conversions at once, and waits when all are busy", async () => {
    const slots = new OfficeSlots(root, 2);
    const busy = new Set<string>();
    let maxBusy = 0;
    const seen: string[] = [];
    await Promise.all(
      Array.from({ length: 6 }, () =>
        slots.run(
          async (profile) => {
            expect(busy.has(profile)).toBe(false);
            busy.add(profile);
            seen.push(profile);
            maxBusy = Math.max(maxBusy, busy.size);
            await new Promise((r) => setTimeout(r, 20));
            busy.delete(profile);
          },
          () => true,
        ),
      ),
    );
    expect(maxBusy).toBe(2);
    expect(new Set(seen).size).toBe(2); // profiles are reused, not created per call
  });

  it("keeps a profile after a document's own failure and rebuilds it after any other", async () => {
    const slots = new OfficeSlots(root, 1);
    let profile = "";
    await slots.run(
      async (dir) => {
        profile = dir;
        await writeFile(join(dir, "registrymodifications.xcu"), "x");
      },
      () => true,
    );
    await expect(
      slots.run(
        async () => {
          throw new Error("the document");
        },
        () => true,
      ),
    ).rejects.toThrow("the document");
    expect((await stat(join(profile, "registrymodifications.xcu"))).isFile()).toBe(true);
    await expect(
      slots.run(
        async () => {
          throw new Error("soffice killed");
        },
        () => false,
      ),
    ).rejects.toThrow("soffice killed");
    await expect(stat(profile)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("starts without the profiles an earlier process of the same pid left", async () => {
    const dir = join(root, "office-1");
    const left = new OfficeSlots(dir, 1);
    let profile = "";
    await left.run(
      async (p) => {
        profile = p;
        await writeFile(join(p, "half-written.xcu"), "<oor:items");
      },
      () => true,
    );
    const restarted = new OfficeSlots(dir, 1);
    await restarted.open();
    await expect(stat(join(profile, "half-written.xcu"))).rejects.toMatchObject({ code: "ENOENT" });
    await restarted.run(
      async (p) => expect(p).toBe(profile),
      () => true,
    );
  });
});
