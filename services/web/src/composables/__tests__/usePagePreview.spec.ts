import { describe, expect, it } from "vitest";
import { ref, shallowReactive } from "vue";
import type { PageInfo } from "@docflow/contracts";
import { usePagePreview } from "@/composables/usePagePreview";

const JOB_ID = "01890a5d-ac96-7000-8000-000000000001";

function page(n: number, previewUrl = ""): PageInfo {
  return { n, width: 1240, height: 1754, text: "", thumbnailUrl: "", previewUrl };
}

describe("usePagePreview", () => {
  it("moves to the ready page before or after among those shown, and stays at either end", () => {
    const pages = shallowReactive(new Map([page(1), page(2), page(4, "https://cdn.example/4.png")].map((p) => [p.n, p])));
    const shown = ref([1, 2, 3, 4]);
    const preview = usePagePreview(JOB_ID, pages, shown);
    expect(preview.page.value).toBeNull();
    expect(preview.previewUrl.value).toBeNull();

    preview.open(2);
    expect(preview.page.value?.n).toBe(2);
    expect(preview.previewUrl.value).toBe(`/v1/jobs/${JOB_ID}/pages/2/preview`);
    // Page 3 is not ready: the next page is 4.
    preview.next();
    expect(preview.openPage.value).toBe(4);
    expect(preview.previewUrl.value).toBe("https://cdn.example/4.png");
    expect(preview.hasNext.value).toBe(false);
    preview.next();
    expect(preview.openPage.value).toBe(4);

    // Only the matches are shown now.
    shown.value = [1, 4];
    preview.previous();
    expect(preview.openPage.value).toBe(1);
    expect(preview.hasPrevious.value).toBe(false);
    preview.previous();
    expect(preview.openPage.value).toBe(1);

    preview.close();
    expect(preview.page.value).toBeNull();
    expect(preview.hasNext.value).toBe(false);
  });
});
