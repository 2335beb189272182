import { flushPromises } from "@vue/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { effectScope, ref } from "vue";
import { IDS, jsonResponse, makeJob, problemResponse, setupApp, stubApi } from "@/__tests__/helpers";
import { useJob } from "@/composables/useJob";
import { useJobsStore } from "@/stores/jobs";

describe("useJob", () => {
  const scopes: Array<ReturnType<typeof effectScope>> = [];
  let up: boolean;

  beforeEach(() => {
    setupApp();
    up = true;
    stubApi((_method, path) => {
      const id = path.split("/").pop()!;
      if (!up) return problemResponse(503, "unavailable", "Service unavailable", "The gateway is restarting.");
      return id === IDS[2] ? problemResponse(404, "not_found", "Not found") : jsonResponse(makeJob({ id }), { headers: { ETag: '"1"' } });
    });
  });

  afterEach(() => {
    for (const scope of scopes.splice(0)) scope.stop();
  });

  function start(id: string | (() => string)) {
    const onReady = vi.fn();
    const scope = effectScope();
    scopes.push(scope);
    return { ...scope.run(() => useJob(id, { onReady }))!, onReady };
  }

  it("reads the job, then is ready and says so", async () => {
    const { job, loadState, onReady } = start(IDS[0]);
    expect(loadState.value).toBe("loading");
    await flushPromises();
    expect(loadState.value).toBe("ready");
    expect(job.value?.id).toBe(IDS[0]);
    expect(onReady).toHaveBeenCalledOnce();
  });

  it("tells a job that does not exist from one that could not be read", async () => {
    const missing = start(IDS[2]);
    await flushPromises();
    expect(missing.loadState.value).toBe("missing");

    up = false;
    const failed = start(IDS[1]);
    await flushPromises();
    expect(failed.loadState.value).toBe("error");
    expect(failed.loadError.value).toBe("The gateway is restarting.");
    expect(failed.onReady).not.toHaveBeenCalled();
  });

  it("keeps showing a job it holds when reading it again fails, with the reason", async () => {
    useJobsStore().upsert(makeJob({ id: IDS[1] }), 1);
    up = false;
    const { loadState, loadError, onReady } = start(IDS[1]);
    expect(loadState.value).toBe("ready");
    await flushPromises();
    expect(loadState.value).toBe("ready");
    expect(loadError.value).toBe("The gateway is restarting.");
    expect(onReady).toHaveBeenCalledOnce();
  });

  it("reads again when the id changes", async () => {
    const id = ref<string>(IDS[0]);
    const { job, loadState } = start(() => id.value);
    await flushPromises();
    id.value = IDS[1];
    await flushPromises();
    expect(loadState.value).toBe("ready");
    expect(job.value?.id).toBe(IDS[1]);
  });
});
