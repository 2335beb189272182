import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPptx } from "./pptx-info.ts";
import * as fx from "../../../../tests/fixtures/generate.ts";
import { expectCode } from "../../test/support.ts";

const LIMITS = { maxUncompressedBytes: 64 * 1024 * 1024, maxEntries: 1000 };

describe("readPptx: facts straight from the OOXML, under limits", () => {
  let dir: string;
  let deck: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "docflow-pptx-info-"));
    deck = join(dir, "deck.pptx");
    await fx.makePptxDeck(deck, [
      { title: "Intro & goals", body: "Why we are here", notes: "Greet everyone\nthen the goals" },
      { title: "Backup slide", notes: "never shown", hidden: true },
      { title: "Roadmap <2027>", body: "Q1 Q2" },
    ]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads title, author, and each shown slide's title and notes in order, skipping hidden slides", async () => {
    const info = await readPptx(deck, LIMITS);
    expect(info).toMatchObject({ title: "Deck fixture", author: "Deck Author", hiddenSlides: 1 });
    expect(info.slides).toEqual([
      { n: 1, title: "Intro & goals", notes: "Greet everyone\nthen the goals" },
      { n: 2, title: "Roadmap <2027>", notes: "" },
    ]);
  });

  it("refuses an archive that unpacks beyond the limit (pptx_too_large)", async () => {
    const bomb = join(dir, "bomb.pptx");
    await fx.makeZipBombPptx(deck, bomb, { inflatedBytes: 80 * 1024 * 1024 });
    await expectCode(readPptx(bomb, LIMITS), "pptx_too_large");
  });

  it("refuses an entry that inflates beyond the size its header declares (pptx_too_large)", async () => {
    const liar = join(dir, "liar.pptx");
    await fx.makeZipBombPptx(deck, liar, { inflatedBytes: 80 * 1024 * 1024, declaredBytes: 1000 });
    await expectCode(readPptx(liar, LIMITS), "pptx_too_large");
  });

  it("refuses more entries than allowed, and non-archives (pptx_invalid)", async () => {
    await expectCode(readPptx(deck, { ...LIMITS, maxEntries: 5 }), "pptx_too_large");
    const junk = join(dir, "junk.pptx");
    await writeFile(junk, Buffer.from("PK\u0003\u0004 not really a zip"));
    await expectCode(readPptx(junk, LIMITS), "pptx_invalid");
  });

  it("refuses a picture linked by URL, which LibreOffice would fetch (pptx_external_content), but not hyperlinks", async () => {
    const linked = join(dir, "linked.pptx");
    await fx.makePptxWithExternalImage(deck, linked, "http://169.254.169.254/latest/meta-data/x.png");
    await expectCode(readPptx(linked, LIMITS), "pptx_external_content");
    // A rewritten deck without the link still reads, and a hyperlink to the web is fine.
    const withLink = join(dir, "hyperlink.pptx");
    await fx.rewriteZip(deck, withLink, (name, data) =>
      name === "ppt/slides/_rels/slide1.xml.rels"
        ? Buffer.from(
            data
              .toString("utf8")
              .replace(
                "</Relationships>",
                '<Relationship Id="rIdWeb" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="https://example.com/" TargetMode="External"/></Relationships>',
              ),
          )
        : data,
    );
    expect((await readPptx(withLink, LIMITS)).slides).toHaveLength(2);
  });
});
