import { computed, ref, toValue, watch, type MaybeRefOrGetter } from "vue";
import { useJobsStore } from "@/stores/jobs";

export type JobLoadState = "loading" | "ready" | "missing" | "error";

/**
 * One job, read from the gateway when its id is given (and again on `load`), then kept current
 * by the jobs store. A job the store holds already is shown at once while it is read again;
 * when the read fails it stays shown, with the reason in `loadError`. `onReady` runs each time a
 * read leaves the job ready (to start loading what belongs to it).
 */
export function useJob(id: MaybeRefOrGetter<string>, options: { onReady?: () => void } = {}) {
  const jobs = useJobsStore();
  const job = computed(() => jobs.get(toValue(id)));
  const loadState = ref<JobLoadState>("loading");
  const loadError = ref<string | null>(null);

  async function load(): Promise<void> {
    const current = toValue(id);
    loadState.value = jobs.get(current) ? "ready" : "loading";
    loadError.value = null;
    try {
      const found = await jobs.fetchJob(current);
      loadState.value = found ? "ready" : "missing";
    } catch (error) {
      loadError.value = error instanceof Error ? error.message : String(error);
      loadState.value = jobs.get(current) ? "ready" : "error";
    }
    if (loadState.value === "ready") options.onReady?.();
  }

  watch(() => toValue(id), load, { immediate: true });

  return { job, loadState, loadError, load };
}
