import { computed, onScopeDispose, shallowReactive, toValue, watch, type MaybeRefOrGetter } from "vue";
import { api, isApiError } from "@/api/client";
import type { PageInfo } from "@docflow/contracts";
import { useJobsStore } from "@/stores/jobs";
import { useLiveStore } from "@/stores/live";

/** Page records read at once while looking for pages that finished while we were not listening. */
const PROBE_PARALLEL = 4;
/** Wait this long after `pagesDone` moves before probing: `page.ready` events usually bring the pages first. */
const PROBE_DELAY_MS = 1_500;

/**
 * The processed pages of one job, as they become ready: from `page.ready`
 * events, from `GET /v1/jobs/{id}/result` once the job is completed, and by
 * probing `GET /v1/jobs/{id}/pages/{n}` for pages that finished while this view
 * was not listening (first load, after a reconnect, while polling).
 */
export function useJobPages(jobId: MaybeRefOrGetter<string>) {
  const jobs = useJobsStore();
  const live = useLiveStore();
  const pages = shallowReactive(new Map<number, PageInfo>());
  const inflight = new Set<number>();
  const job = computed(() => jobs.get(toValue(jobId)));
  let controller = new AbortController();
  let probeTimer: ReturnType<typeof setTimeout> | undefined;
  let probing = false;
  let resultLoaded = false;

  function store(page: PageInfo): void {
    if (Number.isInteger(page.n) && page.n > 0) pages.set(page.n, page);
  }

  async function loadPage(n: number, retries = 1): Promise<void> {
    if (pages.has(n) || inflight.has(n)) return;
    inflight.add(n);
    const id = toValue(jobId);
    const signal = controller.signal;
    try {
      const page = await api.getPage(id, n, signal);
      if (!signal.aborted && id === toValue(jobId)) store({ ...page, n });
    } catch (error) {
      // An event can overtake the page's storage write: try once more shortly.
      if (isApiError(error, "page_not_ready") && retries > 0 && !signal.aborted) {
        inflight.delete(n);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        return loadPage(n, retries - 1);
      }
    } finally {
      inflight.delete(n);
    }
  }

  /** All pages at once (completed jobs). Falls back to probing when the result is not ready yet. */
  async function loadResult(): Promise<void> {
    const id = toValue(jobId);
    const signal = controller.signal;
    try {
      const result = await api.getResult(id, signal);
      if (signal.aborted || id !== toValue(jobId)) return;
      for (const page of result.pages) store(page);
      jobs.upsert(result.job, result.revision);
      resultLoaded = true;
    } catch (error) {
      if (isApiError(error, "job_not_ready")) await probeMissing();
    }
  }

  /** Reads the pages not held yet, a few at a time, until as many as `pagesDone` are held. */
  async function probeMissing(): Promise<void> {
    const current = job.value;
    if (probing || !current || current.pageCount === null) return;
    probing = true;
    const signal = controller.signal;
    try {
      const missing: number[] = [];
      for (let n = 1; n <= current.pageCount; n++) if (!pages.has(n)) missing.push(n);
      const enough = () => pages.size >= (job.value?.pagesDone ?? 0);
      const worker = async () => {
        while (missing.length > 0 && !signal.aborted && !enough()) {
          const n = missing.shift()!;
          await loadPage(n, 0);
        }
      };
      await Promise.all(Array.from({ length: PROBE_PARALLEL }, worker));
    } finally {
      probing = false;
    }
  }

  function scheduleProbe(): void {
    clearTimeout(probeTimer);
    probeTimer = setTimeout(() => {
      const current = job.value;
      if (current && pages.size < current.pagesDone) void probeMissing();
    }, PROBE_DELAY_MS);
  }

  /** First load of the pages of the job held in the store. */
  async function start(): Promise<void> {
    const current = job.value;
    if (!current) return;
    if (current.status === "completed") await loadResult();
    else if (current.pagesDone > 0) await probeMissing();
  }

  const stopListening = live.onEvent((event) => {
    if (event.jobId !== toValue(jobId)) return;
    if (event.type === "page.ready" && event.page !== undefined) void loadPage(event.page);
  });

  watch(
    () => job.value?.pagesDone,
    (done) => {
      if (done !== undefined && pages.size < done) scheduleProbe();
    },
  );

  watch(
    () => job.value?.status,
    (status, before) => {
      if (status === "completed" && before !== undefined && before !== "completed" && !resultLoaded) void loadResult();
    },
  );

  watch(
    () => toValue(jobId),
    () => {
      controller.abort();
      controller = new AbortController();
      pages.clear();
      inflight.clear();
      resultLoaded = false;
    },
  );

  onScopeDispose(() => {
    stopListening();
    controller.abort();
    clearTimeout(probeTimer);
  });

  return { pages, start, loadPage, loadResult, probeMissing };
}
