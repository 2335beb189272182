import type Tus from "@uppy/tus";
import type { Body, Meta } from "@uppy/core";
import { flushPromises } from "@vue/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { effectScope, nextTick } from "vue";
import { setupApp } from "@/__tests__/helpers";
import { applyRuntimeConfig, resetRuntimeConfig } from "@/config";
import { UPPY_ID, useUploadUppy } from "@/composables/useUploadUppy";

type TusPlugin = Tus<Meta, Body>;

function pdf(name: string, size: number): File {
  const file = new File(["%PDF-1.7"], name, { type: "application/pdf", lastModified: 1_700_000_000_000 });
  Object.defineProperty(file, "size", { value: size });
  return file;
}

describe("useUploadUppy", () => {
  const scopes: Array<ReturnType<typeof effectScope>> = [];

  function start(events = {}) {
    const scope = effectScope();
    scopes.push(scope);
    return { scope, ...scope.run(() => useUploadUppy(events))! };
  }

  beforeEach(() => {
    setupApp();
    resetRuntimeConfig();
  });

  afterEach(() => {
    for (const scope of scopes.splice(0)) scope.stop();
  });

  it("installs the tus transport with the runtime config's chunk size, and follows later changes", async () => {
    const { uppy, ready, transport } = start();
    expect(transport()).toBeNull();
    await ready;
    const plugin = uppy.getPlugin("docflow-tus") as unknown as TusPlugin;
    expect(transport()).not.toBeNull();
    expect(plugin.opts).toMatchObject({ endpoint: "/v1/uploads", chunkSize: 8 * 1024 * 1024 });

    applyRuntimeConfig({ maxUploadBytes: 1024 * 1024, tusChunkBytes: 5 * 1024 * 1024 });
    await nextTick();
    expect(plugin.opts.chunkSize).toBe(5 * 1024 * 1024);
    expect(uppy.opts.restrictions.maxFileSize).toBe(1024 * 1024);
  });

  it("gives the same file the same id on every mount, the fingerprint its resumable upload is kept under", async () => {
    const first = start();
    await first.ready;
    const file = pdf("same.pdf", 1_000);
    const id = first.uppy.addFile({ name: file.name, type: file.type, data: file, source: "docflow" });
    first.scope.stop();

    const second = start();
    await second.ready;
    expect(second.uppy.getID()).toBe(UPPY_ID);
    expect(second.uppy.addFile({ name: file.name, type: file.type, data: file, source: "docflow" })).toBe(id);
  });

  it("when the scope ends, stops the uploads in flight without ending them, then lets Uppy go", async () => {
    const { uppy, ready, scope } = start();
    await ready;
    const plugin = uppy.getPlugin("docflow-tus") as unknown as TusPlugin;
    const upload = { abort: vi.fn(async () => undefined) };
    plugin.uploaders["f1"] = upload as never;
    plugin.uploaderEvents["f1"] = { remove: vi.fn() } as never;
    const destroy = vi.spyOn(uppy, "destroy");

    scope.stop();

    // abort(true) would DELETE the upload on the server and forget it for resuming.
    expect(upload.abort.mock.calls).toEqual([[]]);
    expect(destroy).toHaveBeenCalledOnce();
  });

  it("installs nothing when the scope ended before the transport was loaded", async () => {
    const { uppy, ready, scope, transport } = start();
    scope.stop();
    await ready;
    await flushPromises();
    expect(transport()).toBeNull();
    expect(uppy.getPlugin("docflow-tus")).toBeUndefined();
  });
});
