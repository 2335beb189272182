import type { PageRange } from "@docflow/contracts";

/**
 * Splits `pageCount` pages into ranges: a small first range (page 1 appears at
 * once), then ranges of `size` pages that any processor can take.
 */
export function splitRanges(pageCount: number, firstSize: number, size: number): PageRange[] {
  const ranges: PageRange[] = [];
  let first = 1;
  while (first <= pageCount) {
    const length = ranges.length === 0 ? firstSize : size;
    const last = Math.min(pageCount, first + length - 1);
    ranges.push({ first, last });
    first = last + 1;
  }
  return ranges;
}
