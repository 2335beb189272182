import { TERMINAL_STATUSES, type Job, type JobEvent } from "@docflow/contracts";
import { defineStore } from "pinia";
import { computed, ref, shallowReactive } from "vue";
import { api, isApiError } from "@/api/client";

/** Jobs per `GET /v1/jobs` page. */
export const JOBS_PAGE_SIZE = 25;

/** At most this many off-first-page, unfinished jobs are re-read one by one on a resync. */
const MAX_RESYNC_SINGLES = 20;

type LoadState = "idle" | "loading" | "ready" | "error";

/**
 * Newest first, in the order of `GET /v1/jobs`: by id (UUIDv7, so by the moment the upload
 * began), the order its cursor pages through. Not by `createdAt`: the gateway stamps that once
 * the upload is stored, so for uploads that overlap (a large file started first, a small one
 * finished first) the two orders differ, and the list would disagree with the API's and with
 * the page boundary `loadFirstPage` prunes against.
 */
function newestFirst(a: Job, b: Job): number {
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/**
 * The caller's jobs, kept current from HTTP reads and live events.
 *
 * Each job has a revision (from the `ETag` of `GET /v1/jobs/{id}` and from every
 * event). A change older than the revision held is ignored, so an event that
 * arrives late, or an HTTP answer that was already stale, never rolls a job back.
 */
export const useJobsStore = defineStore("jobs", () => {
  const byId = shallowReactive(new Map<string, Job>());
  /** Highest revision seen per job (not reactive: only used to decide). */
  const revisions = new Map<string, number>();
  /** When each job was last written, to tell a stale list read from a fresh change. */
  const writtenAt = new Map<string, number>();

  const listState = ref<LoadState>("idle");
  const listError = ref<string | null>(null);
  const nextCursor = ref<string | null>(null);
  const loadingMore = ref(false);
  const pendingFetches = new Map<string, Promise<Job | null>>();
  let sequence = 0;

  /** All known jobs, newest first. */
  const jobs = computed(() => [...byId.values()].sort(newestFirst));
  const hasMore = computed(() => nextCursor.value !== null);

  function get(id: string): Job | undefined {
    return byId.get(id);
  }

  function revisionOf(id: string): number | undefined {
    return revisions.get(id);
  }

  function write(job: Job, revision: number | null): void {
    byId.set(job.id, job);
    writtenAt.set(job.id, ++sequence);
    if (revision !== null) revisions.set(job.id, Math.max(revision, revisions.get(job.id) ?? revision));
  }

  /**
   * Stores a job read over HTTP or carried by an event. Returns false (and keeps
   * what it has) when `revision` is older than the revision held, or, without a
   * revision, when the job's `updatedAt` is older than the one held.
   */
  function upsert(job: Job, revision: number | null): boolean {
    const held = byId.get(job.id);
    const heldRevision = revisions.get(job.id);
    if (revision !== null && heldRevision !== undefined && revision < heldRevision) return false;
    if (revision === null && held && Date.parse(job.updatedAt) < Date.parse(held.updatedAt)) return false;
    write(job, revision);
    return true;
  }

  function remove(id: string): void {
    byId.delete(id);
    revisions.delete(id);
    writtenAt.delete(id);
  }

  /**
   * Applies a live event. Returns false when it was ignored because the job is
   * already at a newer revision.
   */
  function applyEvent(event: JobEvent): boolean {
    const heldRevision = revisions.get(event.jobId);
    if (heldRevision !== undefined && event.revision < heldRevision) return false;
    if (event.job) return upsert(event.job, event.revision);

    const held = byId.get(event.jobId);
    if (!held) {
      // A job this tab has not seen (uploaded elsewhere, or beyond the loaded pages):
      // remember the revision and read the whole job.
      revisions.set(event.jobId, event.revision);
      void fetchJob(event.jobId).catch(() => undefined);
      return true;
    }

    const next: Job = { ...held, updatedAt: event.at };
    if (event.pageCount !== undefined) next.pageCount = event.pageCount;
    if (event.pagesDone !== undefined) next.pagesDone = event.pagesDone;
    switch (event.type) {
      case "job.queued":
        next.status = "queued";
        break;
      case "job.started":
        next.status = "processing";
        break;
      case "job.progress":
      case "page.ready":
        if (!TERMINAL_STATUSES.has(next.status)) next.status = "processing";
        if (event.type === "page.ready" && event.pagesDone === undefined && event.page !== undefined) {
          next.pagesDone = Math.min(held.pagesDone + 1, next.pageCount ?? Number.MAX_SAFE_INTEGER);
        }
        break;
      case "job.completed":
        next.status = "completed";
        next.completedAt = event.at;
        if (next.pageCount !== null) next.pagesDone = next.pageCount;
        break;
      case "job.failed":
        next.status = "failed";
        if (event.error) next.error = event.error;
        break;
      case "job.canceled":
        next.status = "canceled";
        break;
    }
    write(next, event.revision);
    return true;
  }

  /** Reads one job over HTTP. Resolves null (and forgets the job) when it no longer exists. */
  function fetchJob(id: string): Promise<Job | null> {
    const pending = pendingFetches.get(id);
    if (pending) return pending;
    const request = api
      .getJob(id)
      .then(({ job, revision }) => {
        upsert(job, revision);
        return byId.get(id) ?? job;
      })
      .catch((error: unknown) => {
        if (isApiError(error) && error.status === 404) {
          remove(id);
          return null;
        }
        throw error;
      })
      .finally(() => pendingFetches.delete(id));
    pendingFetches.set(id, request);
    return request;
  }

  /**
   * Reads the newest page of jobs and merges it. Jobs in the range it covers that
   * are missing from the answer were deleted elsewhere and are dropped (unless
   * they changed while the request was on its way).
   */
  async function loadFirstPage(): Promise<void> {
    const startedAt = sequence;
    if (byId.size === 0 || listState.value === "error") listState.value = "loading";
    try {
      const page = await api.listJobs({ limit: JOBS_PAGE_SIZE });
      const returned = new Set(page.items.map((job) => job.id));
      for (const job of page.items) upsert(job, null);
      const oldest = page.items.at(-1);
      for (const job of [...byId.values()]) {
        if (returned.has(job.id) || (writtenAt.get(job.id) ?? 0) > startedAt) continue;
        const covered = page.nextCursor === null || (oldest !== undefined && newestFirst(job, oldest) <= 0);
        if (covered) remove(job.id);
      }
      if (listState.value !== "ready" || nextCursor.value === null || page.nextCursor === null) nextCursor.value = page.nextCursor;
      listError.value = null;
      listState.value = "ready";
    } catch (error) {
      listError.value = error instanceof Error ? error.message : String(error);
      listState.value = "error";
    }
  }

  /** Appends the next (older) page. */
  async function loadMore(): Promise<void> {
    if (!nextCursor.value || loadingMore.value) return;
    loadingMore.value = true;
    try {
      const page = await api.listJobs({ limit: JOBS_PAGE_SIZE, cursor: nextCursor.value });
      for (const job of page.items) upsert(job, null);
      nextCursor.value = page.nextCursor;
      listError.value = null;
    } catch (error) {
      listError.value = error instanceof Error ? error.message : String(error);
    } finally {
      loadingMore.value = false;
    }
  }

  /**
   * Re-reads state over HTTP after live updates were interrupted (or on each poll):
   * the newest page, plus unfinished jobs that are not on it.
   */
  async function resync(extraIds: Iterable<string> = []): Promise<void> {
    await loadFirstPage();
    const ids = new Set(extraIds);
    const onFirstPage = new Set(jobs.value.slice(0, JOBS_PAGE_SIZE).map((job) => job.id));
    for (const job of byId.values()) {
      if (!TERMINAL_STATUSES.has(job.status) && !onFirstPage.has(job.id)) ids.add(job.id);
    }
    await Promise.allSettled([...ids].slice(0, MAX_RESYNC_SINGLES).map((id) => fetchJob(id)));
  }

  /** `DELETE /v1/jobs/{id}`, then forgets the job. */
  async function deleteJob(id: string): Promise<void> {
    await api.deleteJob(id);
    remove(id);
  }

  /** Forgets everything (sign out). */
  function $reset(): void {
    byId.clear();
    revisions.clear();
    writtenAt.clear();
    pendingFetches.clear();
    listState.value = "idle";
    listError.value = null;
    nextCursor.value = null;
  }

  return {
    jobs,
    listState,
    listError,
    hasMore,
    loadingMore,
    get,
    revisionOf,
    upsert,
    applyEvent,
    fetchJob,
    loadFirstPage,
    loadMore,
    resync,
    deleteJob,
    remove,
    $reset,
  };
});
