import { computed, ref, toValue, type MaybeRefOrGetter } from "vue";
import { api } from "@/api/client";
import type { PageInfo } from "@docflow/contracts";

/**
 * The page open in the preview dialog, and moving from it to the page before or after among
 * those shown (all pages, or the matches of a search) that are ready.
 */
export function usePagePreview(jobId: MaybeRefOrGetter<string>, pages: MaybeRefOrGetter<ReadonlyMap<number, PageInfo>>, shownPages: MaybeRefOrGetter<readonly number[]>) {
  /** The number of the page open, or null. */
  const openPage = ref<number | null>(null);
  const page = computed(() => (openPage.value === null ? null : (toValue(pages).get(openPage.value) ?? null)));
  const previewUrl = computed(() => {
    const current = page.value;
    return current ? current.previewUrl || api.pageImageUrl(toValue(jobId), current.n, "preview") : null;
  });
  const readyShown = computed(() => toValue(shownPages).filter((n) => toValue(pages).has(n)));
  const position = computed(() => (openPage.value === null ? -1 : readyShown.value.indexOf(openPage.value)));
  const previousPage = computed(() => (position.value > 0 ? readyShown.value[position.value - 1] : undefined));
  const nextPage = computed(() => (position.value >= 0 && position.value < readyShown.value.length - 1 ? readyShown.value[position.value + 1] : undefined));

  return {
    openPage,
    page,
    previewUrl,
    hasPrevious: computed(() => previousPage.value !== undefined),
    hasNext: computed(() => nextPage.value !== undefined),
    open(n: number): void {
      openPage.value = n;
    },
    close(): void {
      openPage.value = null;
    },
    previous(): void {
      openPage.value = previousPage.value ?? openPage.value;
    },
    next(): void {
      openPage.value = nextPage.value ?? openPage.value;
    },
  };
}
