import { flushPromises } from "@vue/test-utils";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { useAnnouncer } from "@/composables/useAnnouncer";
import { useUploadList } from "@/composables/useUploadList";

const MB = 1024 * 1024;
const FILE = { name: "report.pdf", size: 4 * MB };

describe("useUploadList", () => {
  const { politeMessage, assertiveMessage } = useAnnouncer();
  let now = 0;

  beforeEach(() => {
    now = 1_000;
    vi.spyOn(performance, "now").mockImplementation(() => now);
  });

  it("lists new uploads first, found by key and by Uppy's file id", () => {
    const list = useUploadList();
    const first = list.add(FILE, { fileId: "f1" });
    const refused = list.add({ name: "notes.txt", size: 5 }, { refusal: "Only PDF and PowerPoint (.pptx) files can be uploaded." });

    expect(list.entries.map((entry) => entry.name)).toEqual(["notes.txt", "report.pdf"]);
    expect(first.key).not.toBe(refused.key);
    expect(list.find(first.key)).toBe(first);
    expect(list.byFileId("f1")).toBe(first);
    expect(list.byFileId(undefined)).toBeUndefined();
    expect(refused).toMatchObject({ state: "refused", fileId: null });
    expect(list.active.value).toBe(true);
  });

  it("measures the speed of each upload, and not across a resume", async () => {
    const list = useUploadList();
    const entry = list.add(FILE, { fileId: "f1" });
    list.progress("f1", 0);
    now += 1_000;
    list.progress("f1", MB);
    expect(entry).toMatchObject({ state: "uploading", bytesUploaded: MB, speed: MB });

    // Resumed from 3 MB the server had: not 2 MB sent in no time.
    list.resumed("f1", 3 * MB);
    expect(entry).toMatchObject({ bytesUploaded: 3 * MB, resumedFrom: 3 * MB });
    await flushPromises();
    expect(politeMessage.value).toBe("Resuming report.pdf from 3 MB already uploaded.");
    // Measured afresh: the last speed stays until half a second has been.
    list.progress("f1", 3 * MB);
    expect(entry.speed).toBe(MB);
    now += 500;
    list.progress("f1", 3 * MB + MB / 4);
    expect(entry.speed).toBe(MB / 2);

    // Only the first resume is announced.
    list.succeeded("f1", "job-1");
    await flushPromises();
    list.resumed("f1", MB);
    await flushPromises();
    expect(politeMessage.value).toBe("report.pdf uploaded. Processing starts shortly.");
  });

  it("says when an upload fails, and not once it was canceled", async () => {
    const list = useUploadList();
    const failing = list.add({ name: "a.pdf", size: 10 }, { fileId: "f1" });
    const canceled = list.add({ name: "b.pdf", size: 10 }, { fileId: "f2" });

    expect(list.cancel(canceled.key)).toBe("f2");
    expect(list.cancel(canceled.key)).toBeNull();
    await flushPromises();
    expect(politeMessage.value).toBe("Upload of b.pdf canceled.");
    // Uppy reports the aborted upload as failed: the row stays canceled. So do later events, found by file id or not.
    list.failed("f2", { message: "aborted", status: 0, retryable: true });
    list.progress("f2", 5);
    expect(canceled).toMatchObject({ state: "canceled", bytesUploaded: 0, message: null });

    list.failed("f1", { message: "The file looks like a ZIP archive, not a PDF.", status: 415, retryable: false });
    await flushPromises();
    expect(failing).toMatchObject({ state: "failed", retryable: false });
    expect(assertiveMessage.value).toBe("a.pdf could not be uploaded: The file looks like a ZIP archive, not a PDF.");
    expect(list.active.value).toBe(false);
  });

  it("retries a failed upload from the start, waiting for the connection when offline", () => {
    const list = useUploadList();
    const entry = list.add(FILE, { fileId: "f1" });
    list.progress("f1", MB);
    list.failed("f1", { message: "Storage is not answering.", status: 503, retryable: true });

    const onLine = vi.spyOn(navigator, "onLine", "get").mockReturnValue(false);
    expect(list.retry(entry.key)).toBe("f1");
    expect(entry).toMatchObject({ state: "waiting", bytesUploaded: 0, waitingForNetwork: true });
    expect(list.retry(entry.key)).toBeNull();

    // Progress while the browser still says offline keeps saying so; online again clears it.
    list.progress("f1", 10);
    expect(entry.waitingForNetwork).toBe(true);
    onLine.mockReturnValue(true);
    list.progress("f1", 20);
    expect(entry.waitingForNetwork).toBe(false);
  });

  it("going offline marks the uploads in flight as waiting for the connection, and says so once", async () => {
    const list = useUploadList();
    const uploading = list.add({ name: "a.pdf", size: 10 }, { fileId: "f1" });
    const done = list.add({ name: "b.pdf", size: 10 }, { fileId: "f2" });
    list.succeeded("f2", null);
    list.progress("f1", 5);

    list.offline();
    await flushPromises();
    expect(uploading).toMatchObject({ waitingForNetwork: true, speed: null });
    expect(done.waitingForNetwork).toBe(false);
    expect(assertiveMessage.value).toBe("Connection lost. Uploads go on when you are back online.");

    list.online();
    expect(uploading.waitingForNetwork).toBe(false);
  });

  it("takes out only rows that are not in flight", () => {
    const list = useUploadList();
    const inFlight = list.add({ name: "a.pdf", size: 10 }, { fileId: "f1" });
    const refused = list.add({ name: "b.txt", size: 10 }, { refusal: "no" });

    expect(list.remove(inFlight.key)).toBeNull();
    expect(list.remove(refused.key)).toBe(refused);
    expect(list.remove(refused.key)).toBeNull();
    expect(list.entries).toEqual([inFlight]);
  });
});
