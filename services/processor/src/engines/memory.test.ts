import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeHugePagePdf } from "../../../../tests/fixtures/generate.ts";
import { expectCode } from "../../test/support.ts";
import { renderPageImages } from "./pdf.ts";

/** Poppler children under an address-space cap: a page too big for it fails clearly instead of rendering a 1x1 image. */
describe("poppler under a memory cap", () => {
  let dir: string;
  let pdf: string;
  const CAP = 256 * 1024 * 1024;
  const none = async (): Promise<void> => {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-memory-"));
    pdf = join(dir, "big.pdf");
    // Page 2 is 200 x 200 inches: 6000 x 6000 px (108 MB of RGB) at 30 DPI, beyond what fits in 256 MB with poppler's own buffers.
    await makeHugePagePdf(pdf, { pages: 2, hugePage: 2, size: 14400 });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("renders an ordinary page within the cap", async () => {
    const pages: number[] = [];
    expect(await renderPageImages(pdf, 1, 1, { dpi: 150, timeoutMs: 30_000, maxMemoryBytes: CAP }, async ({ page }) => void pages.push(page))).toBe(1);
    expect(pages).toEqual([1]);
  });

  it("fails with page_too_large when a page needs more than the cap (poppler itself exits 0 with a 1x1 image)", async () => {
    await expectCode(renderPageImages(pdf, 2, 2, { dpi: 50, timeoutMs: 30_000, maxMemoryBytes: CAP }, none), "page_too_large");
  });

  it("fails with page_too_large beyond poppler's own allocation limit, cap or not", async () => {
    await expectCode(renderPageImages(pdf, 2, 2, { dpi: 150, timeoutMs: 30_000 }, none), "page_too_large");
  });
});
