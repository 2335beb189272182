import { computed, ref, toValue, type MaybeRefOrGetter } from "vue";
import type { PageInfo } from "@docflow/contracts";
import { plural } from "@/lib/format";
import { matches, normalizeQuery } from "@/lib/search";

/**
 * Search over the extracted text of the pages that are ready. Without a query every page number
 * of the document is shown (ready or not); with one, the ready pages whose text matches, in order.
 */
export function usePageSearch(pages: MaybeRefOrGetter<ReadonlyMap<number, PageInfo>>, pageCount: MaybeRefOrGetter<number | null>) {
  /** What people typed. */
  const query = ref("");
  /** The query as matched (normalized); empty when there is none. */
  const activeQuery = computed(() => normalizeQuery(query.value));
  /** The matching page numbers, or null when not searching. */
  const matchingPages = computed(() => {
    if (!activeQuery.value) return null;
    return [...toValue(pages).values()]
      .filter((page) => matches(page.text, activeQuery.value))
      .map((page) => page.n)
      .sort((a, b) => a - b);
  });
  /** The page numbers to show. */
  const shownPages = computed<number[]>(() => {
    if (matchingPages.value) return matchingPages.value;
    return Array.from({ length: toValue(pageCount) ?? 0 }, (_, index) => index + 1);
  });
  /** What the search found, in words (empty when not searching). */
  const summary = computed(() => {
    if (!matchingPages.value) return "";
    const found = matchingPages.value.length;
    const waiting = (toValue(pageCount) ?? 0) - toValue(pages).size;
    const term = `“${query.value.trim()}”`;
    const base = found === 0 ? `No page contains ${term}` : found === 1 ? `1 page contains ${term}` : `${found} pages contain ${term}`;
    return waiting > 0 ? `${base} (${plural(waiting, "page")} still being processed)` : base;
  });

  return { query, activeQuery, matchingPages, shownPages, summary };
}
