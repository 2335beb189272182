import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderPages } from "./pdf.ts";
import { expectCode, loadFixtures } from "./test-support.ts";

/** Poppler children under an address-space cap: a page too big for it fails clearly instead of rendering a 1x1 image. */
describe("poppler under a memory cap", () => {
  let dir: string;
  let pdf: string;
  const CAP = 256 * 1024 * 1024;

  beforeAll(async () => {
    await loadFixtures();
    const fx = (await import(new URL("../../../../tests/fixtures/generate.ts", import.meta.url).href)) as {
      makeHugePagePdf(path: string, opts: { pages: number; hugePage: number; size: number }): Promise<void>;
    };
    dir = await mkdtemp(join(tmpdir(), "docflow-memory-"));
    pdf = join(dir, "big.pdf");
    // Page 2 is 200 x 200 inches: 6000 x 6000 px (108 MB of RGB) at 30 DPI, beyond what fits in 256 MB with poppler's own buffers.
    await fx.makeHugePagePdf(pdf, { pages: 2, hugePage: 2, size: 14400 });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("renders an ordinary page within the cap", async () => {
    const files = await renderPages(pdf, 1, 1, { outDir: dir, dpi: 150, encoder: "sharp", timeoutMs: 30_000, maxMemoryBytes: CAP });
    expect([...files.keys()]).toEqual([1]);
  });

  it("fails with page_too_large when a page needs more than the cap (poppler itself exits 0 with a 1x1 image)", async () => {
    await expectCode(renderPages(pdf, 2, 2, { outDir: dir, dpi: 50, encoder: "sharp", timeoutMs: 30_000, maxMemoryBytes: CAP }), "page_too_large");
    await expectCode(renderPages(pdf, 2, 2, { outDir: dir, dpi: 50, timeoutMs: 30_000, maxMemoryBytes: CAP }), "page_too_large");
  });

  it("fails with page_too_large beyond poppler's own allocation limit, cap or not", async () => {
    await expectCode(renderPages(pdf, 2, 2, { outDir: dir, dpi: 150, encoder: "sharp", timeoutMs: 30_000 }), "page_too_large");
  });
});
