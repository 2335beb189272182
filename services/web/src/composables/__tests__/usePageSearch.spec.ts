import { describe, expect, it } from "vitest";
import { ref, shallowReactive } from "vue";
import type { PageInfo } from "@docflow/contracts";
import { usePageSearch } from "@/composables/usePageSearch";

function page(n: number, text: string): PageInfo {
  return { n, width: 1240, height: 1754, text, thumbnailUrl: "", previewUrl: "" };
}

function pagesOf(...list: PageInfo[]) {
  return shallowReactive(new Map(list.map((p) => [p.n, p])));
}

describe("usePageSearch", () => {
  it("shows every page number without a query, ready or not", () => {
    const { shownPages, matchingPages, summary } = usePageSearch(pagesOf(page(2, "x")), 4);
    expect(shownPages.value).toEqual([1, 2, 3, 4]);
    expect(matchingPages.value).toBeNull();
    expect(summary.value).toBe("");
  });

  it("shows the ready pages whose text matches, in order, and counts the pages still to come", () => {
    const pages = pagesOf(page(3, "Invoice 7"), page(1, "An INVOICE"), page(2, "Nothing here"));
    const count = ref<number | null>(5);
    const { query, activeQuery, shownPages, summary } = usePageSearch(pages, count);

    query.value = "  invoice ";
    expect(activeQuery.value).not.toBe("");
    expect(shownPages.value).toEqual([1, 3]);
    expect(summary.value).toBe("2 pages contain “invoice” (2 pages still being processed)");

    pages.set(4, page(4, "invoice again"));
    pages.set(5, page(5, ""));
    expect(shownPages.value).toEqual([1, 3, 4]);
    expect(summary.value).toBe("3 pages contain “invoice”");

    query.value = "again";
    expect(summary.value).toBe("1 page contains “again”");
    query.value = "absent";
    expect(shownPages.value).toEqual([]);
    expect(summary.value).toBe("No page contains “absent”");
  });
});
