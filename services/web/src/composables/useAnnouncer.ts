import { nextTick, readonly, ref } from "vue";

const politeMessage = ref("");
const assertiveMessage = ref("");

/**
 * Screen-reader announcements through one pair of live regions (rendered once
 * by `AppAnnouncer`). Use for outcomes people would otherwise have to look
 * for: "report.pdf uploaded", "Job failed". Not for every percent of progress.
 */
export function useAnnouncer() {
  async function announce(text: string, urgency: "polite" | "assertive" = "polite"): Promise<void> {
    const target = urgency === "assertive" ? assertiveMessage : politeMessage;
    // Clear first so that the same sentence twice is read twice.
    target.value = "";
    await nextTick();
    target.value = text;
  }
  return { politeMessage: readonly(politeMessage), assertiveMessage: readonly(assertiveMessage), announce };
}
