import type { Job } from "@docflow/contracts";
import { toValue, watch, type MaybeRefOrGetter } from "vue";
import { plural } from "@/lib/format";
import { useAnnouncer } from "./useAnnouncer";

/** Says it to screen readers when the job finishes (or fails) while someone is looking at it. */
export function useJobAnnouncements(job: MaybeRefOrGetter<Job | undefined>): void {
  const { announce } = useAnnouncer();
  watch(
    () => toValue(job)?.status,
    (status, before) => {
      const current = toValue(job);
      if (!before || !current || status === before) return;
      if (status === "completed") void announce(`${current.filename} is ready: ${plural(current.pageCount ?? 0, "page")}.`);
      if (status === "failed") void announce(`${current.filename} could not be processed.`, "assertive");
    },
  );
}
