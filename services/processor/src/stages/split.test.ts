import { describe, expect, it } from "vitest";
import { splitRanges } from "./split.ts";

describe("splitRanges", () => {
  it("keeps the first range small so page 1 appears at once", () => {
    expect(splitRanges(20, 1, 8)).toEqual([
      { first: 1, last: 1 },
      { first: 2, last: 9 },
      { first: 10, last: 17 },
      { first: 18, last: 20 },
    ]);
  });

  it("covers every page exactly once", () => {
    for (const pages of [1, 2, 7, 8, 9, 100, 2001]) {
      const covered = splitRanges(pages, 2, 8).flatMap((r) => Array.from({ length: r.last - r.first + 1 }, (_, i) => r.first + i));
      expect(covered).toEqual(Array.from({ length: pages }, (_, i) => i + 1));
    }
  });

  it("gives no ranges for no pages", () => {
    expect(splitRanges(0, 1, 8)).toEqual([]);
  });
});
