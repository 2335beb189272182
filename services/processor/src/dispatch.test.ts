import { describe, expect, it } from "vitest";
import type { JobRecord } from "@docflow/contracts";
import { advanceWindow, allRangesDone, inFlightRanges, isExpress } from "./dispatch.ts";
import { splitRanges } from "./stages/split.ts";

const job = (pages: number, done: number[], dispatched: number | undefined): JobRecord => ({
  id: "0190a000-0000-7000-8000-000000000000",
  tenant: "acme",
  status: "processing",
  filename: "x.pdf",
  contentType: "application/pdf",
  size: 1,
  sha256: null,
  pageCount: pages,
  pagesDone: 0,
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
  sourceKey: "k",
  ranges: splitRanges(pages, 1, 8),
  rangesDone: done,
  ...(dispatched === undefined ? {} : { rangesDispatched: dispatched }),
});

describe("windowed fan-out", () => {
  it("dispatches at most the window at first", () => {
    // 2,000 pages: 251 ranges, 4 go out.
    expect(advanceWindow(job(2000, [], 0), 4)).toBe(4);
    expect(advanceWindow(job(3, [], 0), 4)).toBe(2); // fewer ranges than the window
  });

  it("releases one range per finished range, never more than the window in flight", () => {
    let record = job(100, [], 0);
    record.rangesDispatched = advanceWindow(record, 3);
    const order: number[] = [];
    while (!allRangesDone(record)) {
      const inFlight = inFlightRanges(record);
      expect(inFlight.length).toBeLessThanOrEqual(3);
      const finished = inFlight[0]!;
      order.push(finished.first);
      record = { ...record, rangesDone: [...record.rangesDone, finished.first] };
      record.rangesDispatched = advanceWindow(record, 3);
    }
    // Every range finished exactly once, in order.
    expect(order).toEqual(record.ranges.map((r) => r.first));
  });

  it("does not advance while the window is full", () => {
    expect(advanceWindow(job(100, [], 4), 4)).toBe(4);
    expect(advanceWindow(job(100, [1], 4), 4)).toBe(5);
  });

  it("treats a record without the counter as fully dispatched (records from before the window)", () => {
    const old = job(40, [], undefined);
    expect(advanceWindow(old, 2)).toBe(old.ranges.length);
    expect(inFlightRanges(old)).toHaveLength(old.ranges.length);
  });
});

describe("express lane", () => {
  it("takes every job's first range and every range of a small job, nothing else", () => {
    const big = job(100, [], 0);
    expect(big.ranges.filter((r) => isExpress(big, r, 16)).map((r) => r.first)).toEqual([1]);
    const small = job(16, [], 0);
    expect(small.ranges.filter((r) => isExpress(small, r, 16))).toEqual(small.ranges);
    expect(small.ranges.filter((r) => isExpress(small, r, 0)).map((r) => r.first)).toEqual([1]);
  });
});
