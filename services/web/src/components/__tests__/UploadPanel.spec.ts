import type { Body, Meta, Uppy } from "@uppy/core";
import { mount, type VueWrapper } from "@vue/test-utils";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import UploadPanel from "@/components/UploadPanel.vue";
import { applyRuntimeConfig, resetRuntimeConfig } from "@/config";
import { useJobsStore } from "@/stores/jobs";
import { makeJob, settle, setupApp, testRouter } from "@/__tests__/helpers";
import type * as UploadTransportModule from "@/upload/uploadTransport";
import type { UploadTransportEvents } from "@/upload/uploadTransport";

/**
 * A fake transport: the real answer and error handling of the tus transport, but an uploader
 * that sends nothing. The test plays the network's part by emitting Uppy's progress, success
 * and error events, in the shapes Uppy's tus plugin gives them.
 */
const fake = vi.hoisted(() => ({
  uppy: null as Uppy<Meta, Body> | null,
  uploads: [] as string[][],
  events: {} as UploadTransportEvents,
  /** Files Uppy still held when the transport was detached (the panel going away). */
  detached: [] as string[][],
  /** Chunk sizes the transport was installed with, then set to. */
  chunkBytes: [] as number[],
}));

vi.mock("@/upload/uploadTransport", async (importOriginal) => {
  const real = await importOriginal<typeof UploadTransportModule>();
  const uploader = async (fileIDs: string[]) => {
    fake.uploads.push(fileIDs);
    await new Promise(() => undefined); // stays "in flight" until the test ends it
  };
  return {
    ...real,
    createTusTransport: async (config: { tusChunkBytes: number }) => ({
      ...(await real.createTusTransport(config)),
      install(uppy: Uppy<Meta, Body>, events: UploadTransportEvents = {}) {
        fake.uppy = uppy;
        fake.events = events;
        fake.chunkBytes.push(config.tusChunkBytes);
        uppy.addUploader(uploader);
      },
      setChunkBytes(_uppy: Uppy<Meta, Body>, bytes: number) {
        fake.chunkBytes.push(bytes);
      },
      detach(uppy: Uppy<Meta, Body>) {
        fake.detached.push(uppy.getFiles().map((file) => file.id));
      },
    }),
  };
});

function pdf(name: string, size: number): File {
  const file = new File(["%PDF-1.7"], name, { type: "application/pdf" });
  Object.defineProperty(file, "size", { value: size });
  return file;
}

async function pick(wrapper: VueWrapper, files: File[]): Promise<void> {
  const input = wrapper.get<HTMLInputElement>('[data-testid="file-input"]');
  Object.defineProperty(input.element, "files", { value: files, configurable: true });
  await input.trigger("change");
  await settle();
}

/** The answer to the last request of an upload, as Uppy's tus plugin hands it to `upload-success`. */
function tusSuccess(body: unknown): { status: number; body: never; uploadURL: string } {
  const xhr = Object.create(XMLHttpRequest.prototype) as XMLHttpRequest;
  Object.defineProperties(xhr, {
    status: { value: 204 },
    responseText: { value: body === undefined ? "" : JSON.stringify(body) },
    getResponseHeader: { value: () => null },
  });
  return { status: 204, body: { xhr } as never, uploadURL: "/v1/uploads/abc" };
}

/** A request the gateway refused, as tus-js-client hands it to `upload-error`. */
function tusError(status: number, problem: unknown): Error {
  const originalResponse = { getStatus: () => status, getHeader: () => undefined, getBody: () => JSON.stringify(problem) };
  return Object.assign(new Error(`tus: unexpected response while uploading chunk, originated from request (response code: ${status})`), { originalResponse });
}

/** Mounted panels, unmounted after each test (a live one would follow the next test's runtime config). */
const mounted: VueWrapper[] = [];

function mountPanel(): VueWrapper {
  const { pinia } = setupApp();
  const wrapper = mount(UploadPanel, { global: { plugins: [pinia, testRouter()] }, attachTo: document.body });
  mounted.push(wrapper);
  return wrapper;
}

describe("UploadPanel", () => {
  let now = 0;

  beforeEach(() => {
    fake.uppy = null;
    fake.uploads = [];
    fake.events = {};
    fake.detached = [];
    fake.chunkBytes = [];
    resetRuntimeConfig();
    now = 1_000;
    vi.spyOn(performance, "now").mockImplementation(() => now);
  });

  afterEach(() => {
    for (const wrapper of mounted.splice(0)) wrapper.unmount();
    document.body.innerHTML = "";
  });

  it("offers a drop zone and a labelled file picker for PDF and PPTX", () => {
    const wrapper = mountPanel();
    expect(wrapper.get("h2").text()).toBe("Upload documents");
    expect(wrapper.get("button.btn-primary").text()).toBe("Choose files");
    expect(wrapper.text()).toContain("up to 512 MB each");
    const input = wrapper.get<HTMLInputElement>('[data-testid="file-input"]').element;
    expect(input.multiple).toBe(true);
    expect(input.accept).toContain(".pdf");
    expect(input.accept).toContain(".pptx");
  });

  it("refuses a .txt file with a message and sends nothing", async () => {
    const wrapper = mountPanel();
    await pick(wrapper, [new File(["hello"], "notes.txt", { type: "text/plain" })]);

    const row = wrapper.get(".uploads li");
    expect(row.text()).toContain("notes.txt");
    expect(row.text()).toContain("Not uploaded.");
    expect(row.text()).toContain("Only PDF and PowerPoint (.pptx) files can be uploaded.");
    expect(fake.uploads).toEqual([]);
  });

  it("refuses a file over the size limit, before uploading", async () => {
    const wrapper = mountPanel();
    await pick(wrapper, [pdf("scan.pdf", 600 * 1024 * 1024)]);

    expect(wrapper.get(".uploads li").text()).toContain("The file is 600 MB; the limit is 512 MB.");
    expect(fake.uploads).toEqual([]);
  });

  it("takes the size limit from the runtime config", async () => {
    applyRuntimeConfig({ maxUploadBytes: 1024 * 1024 });
    const wrapper = mountPanel();
    expect(wrapper.text()).toContain("up to 1 MB each");
    await pick(wrapper, [pdf("big.pdf", 3 * 1024 * 1024)]);
    expect(wrapper.get(".uploads li").text()).toContain("The file is 3 MB; the limit is 1 MB.");
  });

  it("uploads dropped files and shows progress and speed per file", async () => {
    const wrapper = mountPanel();
    const file = pdf("report.pdf", 4 * 1024 * 1024);
    await wrapper.get('[data-testid="dropzone"]').trigger("drop", { dataTransfer: { files: [file], types: ["Files"] } });
    await settle();

    expect(fake.uploads).toHaveLength(1);
    const [fileId] = fake.uploads[0]!;
    const uppy = fake.uppy!;
    const progress = (bytesUploaded: number) => uppy.emit("upload-progress", uppy.getFile(fileId!), { uploadStarted: Date.now(), bytesUploaded, bytesTotal: file.size });

    progress(0);
    now += 1_000;
    progress(1024 * 1024);
    await settle();

    const bar = wrapper.get('[role="progressbar"]');
    expect(bar.attributes("aria-label")).toBe("Upload of report.pdf");
    expect(bar.attributes("aria-valuenow")).toBe("25");
    const row = wrapper.get(".uploads li").text();
    expect(row).toContain("25%");
    expect(row).toContain("1 MB of 4 MB");
    expect(row).toContain("1 MB/s");
    expect(row).toContain("3 s left");
  });

  it("cancels an upload in progress", async () => {
    const wrapper = mountPanel();
    await pick(wrapper, [pdf("slides.pdf", 1_000_000)]);
    const [fileId] = fake.uploads[0]!;
    expect(fake.uppy!.getFile(fileId!)).toBeDefined();

    await wrapper.get('button[aria-label="Cancel upload of slides.pdf"]').trigger("click");

    expect(wrapper.get(".uploads li").text()).toContain("Upload canceled.");
    expect(wrapper.find('[role="progressbar"]').exists()).toBe(false);
    // Removing the file from Uppy is what aborts its request.
    expect(fake.uppy!.getFile(fileId!)).toBeUndefined();
  });

  it("shows the job once the gateway accepted the file", async () => {
    const wrapper = mountPanel();
    await pick(wrapper, [pdf("report.pdf", 1_000)]);
    const [fileId] = fake.uploads[0]!;
    const job = makeJob({ status: "queued", pageCount: null });
    fake.uppy!.emit("upload-success", fake.uppy!.getFile(fileId!), tusSuccess(job));
    await settle();

    expect(wrapper.get(".uploads li").text()).toContain("Uploaded.");
    expect(wrapper.get(".uploads li a").attributes("href")).toBe(`/jobs/${job.id}`);
    expect(useJobsStore().get(job.id)?.filename).toBe("report.pdf");
  });

  it("shows the gateway's reason when it refuses a file after upload", async () => {
    const wrapper = mountPanel();
    await pick(wrapper, [pdf("fake.pdf", 1_000)]);
    const [fileId] = fake.uploads[0]!;
    const error = tusError(415, {
      type: "about:blank",
      title: "Only PDF and PowerPoint (PPTX) files are accepted",
      status: 415,
      detail: "The file looks like a ZIP archive, not a PDF.",
      code: "unsupported_media_type",
    });
    fake.uppy!.emit("upload-error", fake.uppy!.getFile(fileId!), error, undefined);
    await settle();

    const row = wrapper.get(".uploads li").text();
    expect(row).toContain("Upload failed.");
    expect(row).toContain("The file looks like a ZIP archive, not a PDF.");
    // A refusal will not change by trying again.
    expect(wrapper.find('button[aria-label="Retry upload of fake.pdf"]').exists()).toBe(false);
  });

  it("sends a failed upload again on Retry, from the start", async () => {
    const wrapper = mountPanel();
    await pick(wrapper, [pdf("flaky.pdf", 4 * 1024 * 1024)]);
    const [fileId] = fake.uploads[0]!;
    const uppy = fake.uppy!;
    uppy.emit("upload-progress", uppy.getFile(fileId!), { uploadStarted: Date.now(), bytesUploaded: 1024 * 1024, bytesTotal: 4 * 1024 * 1024 });
    const error = tusError(503, { type: "about:blank", title: "Service Unavailable", status: 503, detail: "Storage is not answering.", code: "storage_unavailable" });
    uppy.emit("upload-error", uppy.getFile(fileId!), error, undefined);
    await settle();
    expect(wrapper.get(".uploads li").text()).toContain("Storage is not answering.");

    await wrapper.get('button[aria-label="Retry upload of flaky.pdf"]').trigger("click");
    await settle();

    expect(fake.uploads).toEqual([[fileId], [fileId]]);
    const row = wrapper.get(".uploads li");
    expect(row.text()).toContain("Waiting to start…");
    expect(row.text()).not.toContain("Storage is not answering.");
    expect(row.find('[role="progressbar"]').attributes("aria-valuetext")).toBe("Waiting to start");
  });

  it("lets the same file go again once its upload is done", async () => {
    const wrapper = mountPanel();
    const file = pdf("twice.pdf", 1_000);
    await pick(wrapper, [file]);
    const [fileId] = fake.uploads[0]!;
    const uppy = fake.uppy!;
    uppy.emit("upload-success", uppy.getFile(fileId!), tusSuccess(makeJob({ status: "queued" })));
    uppy.emit("complete", { successful: [], failed: [], uploadID: "1" } as never);
    await settle();
    expect(uppy.getFile(fileId!)).toBeUndefined();

    await pick(wrapper, [file]);
    expect(fake.uploads).toEqual([[fileId], [fileId]]);
    expect(wrapper.findAll(".uploads li").map((row) => row.text().includes("Uploaded."))).toEqual([false, true]);
  });

  it("clears finished rows, and dismisses one, but never one in flight", async () => {
    const wrapper = mountPanel();
    await pick(wrapper, [new File(["x"], "notes.txt", { type: "text/plain" }), pdf("done.pdf", 1_000), pdf("gone.pdf", 1_000), pdf("going.pdf", 1_000)]);
    const uppy = fake.uppy!;
    const idOf = (name: string) => uppy.getFiles().find((file) => file.name === name)!.id;
    uppy.emit("upload-success", uppy.getFile(idOf("done.pdf")), tusSuccess(makeJob({ status: "queued" })));
    await settle();
    await wrapper.get('button[aria-label="Cancel upload of gone.pdf"]').trigger("click");
    const names = () => wrapper.findAll(".uploads li .name").map((name) => name.text());
    expect(names()).toEqual(["going.pdf", "gone.pdf", "done.pdf", "notes.txt"]);

    await wrapper.get('button[aria-label="Remove gone.pdf from this list"]').trigger("click");
    expect(names()).toEqual(["going.pdf", "done.pdf", "notes.txt"]);

    await wrapper
      .findAll("button")
      .find((button) => button.text() === "Clear finished")!
      .trigger("click");
    expect(names()).toEqual(["going.pdf"]);
    expect(wrapper.findAll("button").some((button) => button.text() === "Clear finished")).toBe(false);
    expect(uppy.getFile(idOf("going.pdf"))).toBeDefined();
  });

  it("says when an upload goes on from bytes the server already had, and once done that it resumed", async () => {
    const wrapper = mountPanel();
    const file = pdf("big.pdf", 4 * 1024 * 1024);
    await pick(wrapper, [file]);
    const [fileId] = fake.uploads[0]!;
    const uppy = fake.uppy!;

    fake.events.resumed!(fileId!, 1024 * 1024);
    uppy.emit("upload-progress", uppy.getFile(fileId!), { uploadStarted: Date.now(), bytesUploaded: 2 * 1024 * 1024, bytesTotal: file.size });
    await settle();
    expect(wrapper.get(".uploads li").text()).toContain("50% · 2 MB of 4 MB · resumed from 1 MB");

    uppy.emit("upload-success", uppy.getFile(fileId!), tusSuccess(undefined));
    await settle();
    expect(wrapper.get(".uploads li").text()).toContain("Uploaded. Resumed from 1 MB.");
  });

  it("says the connection is lost while offline, without failing the upload, and goes back to progress when online", async () => {
    const wrapper = mountPanel();
    const file = pdf("trip.pdf", 4 * 1024 * 1024);
    await pick(wrapper, [file]);
    const [fileId] = fake.uploads[0]!;
    const uppy = fake.uppy!;
    uppy.emit("upload-progress", uppy.getFile(fileId!), { uploadStarted: Date.now(), bytesUploaded: 1024 * 1024, bytesTotal: file.size });
    await settle();

    window.dispatchEvent(new Event("offline"));
    await settle();
    const row = wrapper.get(".uploads li");
    expect(row.text()).toContain("25% · Connection lost. The upload goes on when you are back online.");
    expect(row.text()).not.toContain("Upload failed");
    expect(row.find('button[aria-label="Cancel upload of trip.pdf"]').exists()).toBe(true);

    window.dispatchEvent(new Event("online"));
    await settle();
    expect(wrapper.get(".uploads li").text()).toContain("25% · 1 MB of 4 MB");
    expect(wrapper.get(".uploads li").text()).not.toContain("Connection lost");
  });

  it("follows a runtime config that arrives after the panel: the size limit, and the chunk size of uploads to come", async () => {
    const wrapper = mountPanel();
    await settle();
    expect(fake.chunkBytes).toEqual([8 * 1024 * 1024]);

    applyRuntimeConfig({ maxUploadBytes: 2 * 1024 * 1024, tusChunkBytes: 5 * 1024 * 1024, uploadTransport: "tus", uploadEndpoint: "/v1/uploads" });
    await settle();

    expect(fake.chunkBytes).toEqual([8 * 1024 * 1024, 5 * 1024 * 1024]);
    expect(wrapper.text()).toContain("up to 2 MB each");
    await pick(wrapper, [pdf("big.pdf", 3 * 1024 * 1024)]);
    expect(wrapper.get(".uploads li").text()).toContain("The file is 3 MB; the limit is 2 MB.");
    expect(fake.uploads).toEqual([]);
  });

  it("retried while offline, an upload says it waits for the connection", async () => {
    const wrapper = mountPanel();
    await pick(wrapper, [pdf("late.pdf", 1_000)]);
    const [fileId] = fake.uploads[0]!;
    fake.uppy!.emit("upload-error", fake.uppy!.getFile(fileId!), tusError(503, {}), undefined);
    await settle();
    const onLine = vi.spyOn(navigator, "onLine", "get").mockReturnValue(false);

    await wrapper.get('button[aria-label="Retry upload of late.pdf"]').trigger("click");
    expect(wrapper.get(".uploads li").text()).toContain("Waiting for the connection…");

    onLine.mockReturnValue(true);
    window.dispatchEvent(new Event("online"));
    await settle();
    expect(wrapper.get(".uploads li").text()).toContain("Waiting to start…");
  });

  it("gives a file the same id on every mount, and leaving does not cancel its upload before the transport lets go", async () => {
    const file = pdf("same.pdf", 1_000);
    const first = mountPanel();
    await pick(first, [file]);
    const [firstId] = fake.uploads[0]!;
    mounted.splice(mounted.indexOf(first), 1);
    first.unmount();
    // The transport was detached while Uppy still held the file (so it could keep the upload).
    expect(fake.detached).toEqual([[firstId]]);

    const second = mountPanel();
    await pick(second, [file]);
    // Same file, same id: the fingerprint a resumable upload is stored under does not change.
    expect(fake.uploads[1]).toEqual([firstId]);
  });
});
