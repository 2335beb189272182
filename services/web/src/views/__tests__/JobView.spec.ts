import { mount, type VueWrapper } from "@vue/test-utils";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { PageInfo } from "@docflow/contracts";
import { useAnnouncer } from "@/composables/useAnnouncer";
import { useLiveStore } from "@/stores/live";
import JobView from "@/views/JobView.vue";
import { IDS, jsonResponse, makeEvent, makeJob, problemResponse, settle, setupApp, stubApi, stubObjectUrls, testRouter } from "@/__tests__/helpers";

const id = IDS[0];

const TEXTS: Record<number, string> = {
  1: "Quarterly report\nRevenue grew in every region.",
  2: "Invoice 2024-117\nAmount due: 1,200 EUR",
  3: "Appendix: invoice numbers and the\nterms of payment.",
};

function page(n: number): PageInfo {
  return {
    n,
    width: 1240,
    height: 1754,
    text: TEXTS[n] ?? "",
    thumbnailUrl: `/v1/jobs/${id}/pages/${n}/thumbnail`,
    previewUrl: `/v1/jobs/${id}/pages/${n}/preview`,
  };
}

/** A fake gateway for one job: pages become readable when `ready` has them. */
function fakeGateway(job: ReturnType<typeof makeJob>, revision = 3) {
  const ready = new Set<number>();
  const requests: string[] = [];
  const source = { ok: true };
  stubApi((method, path) => {
    requests.push(`${method} ${path}`);
    if (path === `/v1/jobs/${id}`) return jsonResponse(job, { headers: { ETag: `"${revision}"` } });
    const pageMatch = new RegExp(`^/v1/jobs/${id}/pages/(\\d+)$`).exec(path);
    if (pageMatch) {
      const n = Number(pageMatch[1]);
      return ready.has(n) ? jsonResponse(page(n)) : problemResponse(404, "page_not_ready", "This page has not been processed yet");
    }
    if (path === `/v1/jobs/${id}/source`) {
      return source.ok ? new Response(new Blob(["%PDF-1.7"], { type: "application/pdf" })) : problemResponse(503, "storage_unavailable", "Storage unavailable", "The file store is not answering.");
    }
    if (/\/thumbnail$|\/preview$/.test(path)) return new Response(new Blob(["img"], { type: "image/webp" }), { headers: { "Content-Type": "image/webp" } });
    if (path === `/v1/jobs/${id}/result`) {
      return job.status === "completed" ? jsonResponse({ job, pages: [...ready].map(page) }) : problemResponse(409, "job_not_ready", "The job has not finished processing yet");
    }
    return problemResponse(404, "route_not_found", "No such endpoint");
  });
  return { ready, requests, source };
}

function mountView(): VueWrapper {
  const { pinia } = setupApp();
  return mount(JobView, { props: { id }, global: { plugins: [pinia, testRouter()] }, attachTo: document.body });
}

/** The page preview (the other dialog is the delete confirmation, an alertdialog). */
const PREVIEW = 'dialog:not([role="alertdialog"])';

function buttonNamed(wrapper: VueWrapper, text: string) {
  const button = wrapper.findAll("button").find((candidate) => candidate.text() === text);
  if (!button) throw new Error(`no button "${text}"`);
  return button;
}

function readyPages(wrapper: VueWrapper): string[] {
  return wrapper.findAll("ol.grid button").map((button) => button.get(".caption").text());
}

describe("JobView", () => {
  let urls: ReturnType<typeof stubObjectUrls>;

  beforeEach(() => {
    document.body.innerHTML = "";
    urls = stubObjectUrls();
  });

  it("shows the job and a reserved box for every page before any is ready", async () => {
    fakeGateway(makeJob({ pageCount: 3, pagesDone: 0 }));
    const wrapper = mountView();
    await settle();

    expect(wrapper.get("h1").text()).toBe("report.pdf");
    expect(wrapper.text()).toContain("Processing");
    expect(wrapper.get('[data-testid="page-progress"]').text()).toBe("0/3 pages done");
    expect(wrapper.findAll("ol.grid li")).toHaveLength(3);
    expect(wrapper.findAll("ol.grid li .frame")).toHaveLength(3);
    expect(readyPages(wrapper)).toEqual([]);
    expect(wrapper.text()).toContain("Page 1, not ready yet");
  });

  it("shows pages as page.ready events arrive", async () => {
    const gateway = fakeGateway(makeJob({ pageCount: 3, pagesDone: 0 }));
    const wrapper = mountView();
    await settle();

    gateway.ready.add(2);
    useLiveStore().dispatch(makeEvent({ type: "page.ready", jobId: id, revision: 4, page: 2, pagesDone: 1, pageCount: 3 }));
    await settle();

    expect(readyPages(wrapper)).toEqual(["Page 2"]);
    expect(wrapper.get('[data-testid="page-progress"]').text()).toBe("1/3 pages done");
    // The thumbnail was fetched with the token and shown through an object URL.
    expect(gateway.requests).toContain(`GET /v1/jobs/${id}/pages/2/thumbnail`);
    expect(wrapper.get('[data-page="2"] img').attributes("src")).toMatch(/^blob:/);
    expect(wrapper.findAll("ol.grid li")).toHaveLength(3);

    gateway.ready.add(1);
    useLiveStore().dispatch(makeEvent({ type: "page.ready", jobId: id, revision: 5, page: 1, pagesDone: 2, pageCount: 3 }));
    await settle();
    expect(readyPages(wrapper)).toEqual(["Page 1", "Page 2"]);

    wrapper.unmount();
    expect(urls.revoked).toHaveBeenCalledTimes(urls.created.mock.calls.length);
  });

  it("searches the extracted text and shows only the matching pages, highlighted", async () => {
    const gateway = fakeGateway(makeJob({ status: "completed", pageCount: 3, pagesDone: 3 }));
    gateway.ready.add(1).add(2).add(3);
    const wrapper = mountView();
    await settle();
    expect(readyPages(wrapper)).toEqual(["Page 1", "Page 2", "Page 3"]);

    await wrapper.get('input[type="search"]').setValue("invoice");
    await settle();

    expect(readyPages(wrapper)).toEqual(["Page 2", "Page 3"]);
    expect(wrapper.text()).toContain("2 pages contain “invoice”");
    expect(wrapper.findAll("ol.grid mark").map((mark) => mark.text().toLowerCase())).toEqual(["invoice", "invoice"]);

    await wrapper.get('input[type="search"]').setValue("terms of payment");
    await settle();
    expect(readyPages(wrapper)).toEqual(["Page 3"]);

    await wrapper.get('input[type="search"]').setValue("nothing like this");
    await settle();
    expect(readyPages(wrapper)).toEqual([]);
    expect(wrapper.text()).toContain("No page contains “nothing like this”");
  });

  it("opens a page's preview and text", async () => {
    const gateway = fakeGateway(makeJob({ status: "completed", pageCount: 3, pagesDone: 3 }));
    gateway.ready.add(1).add(2).add(3);
    const wrapper = mountView();
    await settle();

    await wrapper.get('[data-page="2"] button').trigger("click");
    await settle();

    const dialog = wrapper.get(PREVIEW);
    expect(dialog.attributes("open")).toBeDefined();
    expect(dialog.get("h2").text()).toContain("Page 2");
    expect(dialog.text()).toContain("Amount due: 1,200 EUR");
    expect(gateway.requests).toContain(`GET /v1/jobs/${id}/pages/2/preview`);
  });

  it("explains a failed job in words a person understands", async () => {
    fakeGateway(makeJob({ status: "failed", pageCount: null, error: { code: "pdf_encrypted", message: "encrypted: true" } }));
    const wrapper = mountView();
    await settle();

    expect(wrapper.text()).toContain("Failed");
    expect(wrapper.get("#failure-title").text()).toBe("This document could not be processed");
    expect(wrapper.get('[data-testid="failure-reason"]').text()).toContain("This PDF is protected by a password");
    expect(wrapper.text()).not.toContain("encrypted: true");
  });

  it("deletes the job after confirmation", async () => {
    const gateway = fakeGateway(makeJob({ status: "completed", pageCount: 0, pagesDone: 0 }));
    const { pinia } = setupApp();
    const router = testRouter();
    await router.push(`/jobs/${id}`);
    const wrapper = mount(JobView, { props: { id }, global: { plugins: [pinia, router] }, attachTo: document.body });
    await settle();

    await wrapper
      .findAll("button")
      .find((button) => button.text() === "Delete")!
      .trigger("click");
    await settle();
    const dialog = wrapper.get('dialog[role="alertdialog"]');
    expect(dialog.text()).toContain("Delete “report.pdf”?");
    expect(dialog.text()).toContain("This cannot be undone.");
    expect(gateway.requests.some((request) => request.startsWith("DELETE"))).toBe(false);

    await dialog
      .findAll("button")
      .find((button) => button.text() === "Delete document")!
      .trigger("click");
    await settle();
    expect(gateway.requests).toContain(`DELETE /v1/jobs/${id}`);
    expect(router.currentRoute.value.name).toBe("jobs");
  });

  it("moves through the pages in the preview, only through the matches while searching", async () => {
    const gateway = fakeGateway(makeJob({ status: "completed", pageCount: 3, pagesDone: 3 }));
    gateway.ready.add(1).add(2).add(3);
    const wrapper = mountView();
    await settle();
    await wrapper.get('input[type="search"]').setValue("invoice");
    await settle();

    await wrapper.get('[data-page="2"] button').trigger("click");
    await settle();
    const dialog = wrapper.get(PREVIEW);
    const nav = (name: string) => dialog.findAll("button").find((button) => button.text().includes(name))!;
    expect(dialog.get("h2").text()).toContain("Page 2");
    // Page 1 does not match: nothing before page 2.
    expect(nav("Previous").attributes("disabled")).toBeDefined();

    await nav("Next").trigger("click");
    await settle();
    expect(dialog.get("h2").text()).toContain("Page 3");
    expect(dialog.text()).toContain("terms of payment");
    expect(nav("Next").attributes("disabled")).toBeDefined();

    await nav("Previous").trigger("click");
    await settle();
    expect(dialog.get("h2").text()).toContain("Page 2");

    await nav("Close").trigger("click");
    await settle();
    expect(wrapper.find(`${PREVIEW} h2`).exists()).toBe(false);
  });

  it("downloads the original with the token under the document's name, and frees it on leaving", async () => {
    const gateway = fakeGateway(makeJob({ status: "completed", pageCount: 0, pagesDone: 0 }));
    const clicked: Array<{ href: string; download: string }> = [];
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      clicked.push({ href: this.href, download: this.download });
    });
    const wrapper = mountView();
    await settle();

    await buttonNamed(wrapper, "Download original").trigger("click");
    expect(buttonNamed(wrapper, "Preparing download…").attributes("disabled")).toBeDefined();
    await settle();

    expect(gateway.requests).toContain(`GET /v1/jobs/${id}/source`);
    expect(clicked).toEqual([{ href: expect.stringMatching(/^blob:/), download: "report.pdf" }]);
    expect(buttonNamed(wrapper, "Download original").attributes("disabled")).toBeUndefined();
    // The link is gone; its object URL lives until the view does (the browser may still be saving).
    expect(document.querySelector("a[download]")).toBeNull();
    const url = clicked[0]!.href;
    expect(urls.revoked).not.toHaveBeenCalledWith(url);
    wrapper.unmount();
    expect(urls.revoked).toHaveBeenCalledWith(url);
  });

  it("says why a download failed", async () => {
    const gateway = fakeGateway(makeJob({ status: "completed", pageCount: 0, pagesDone: 0 }));
    gateway.source.ok = false;
    const wrapper = mountView();
    await settle();

    await buttonNamed(wrapper, "Download original").trigger("click");
    await settle();
    expect(wrapper.get('[role="alert"]').text()).toBe("Download failed: The file store is not answering.");
  });

  it("says it when the job finishes or fails while someone is looking at it", async () => {
    fakeGateway(makeJob({ pageCount: 3, pagesDone: 2 }));
    const { politeMessage, assertiveMessage } = useAnnouncer();
    const wrapper = mountView();
    await settle();

    useLiveStore().dispatch(makeEvent({ type: "job.completed", jobId: id, revision: 9, pagesDone: 3, pageCount: 3 }));
    await settle();
    expect(politeMessage.value).toBe("report.pdf is ready: 3 pages.");
    expect(wrapper.get('[data-testid="page-progress"]').text()).toBe("3 pages");
    wrapper.unmount();

    fakeGateway(makeJob({ pageCount: 3, pagesDone: 1 }));
    const again = mountView();
    await settle();
    useLiveStore().dispatch(makeEvent({ type: "job.failed", jobId: id, revision: 9, error: { code: "render_failed", message: "x" } }));
    await settle();
    expect(assertiveMessage.value).toBe("report.pdf could not be processed.");
    again.unmount();
  });

  it("tells what it waits for before the pages are counted, and when processing was canceled", async () => {
    const job = makeJob({ status: "queued", pageCount: null });
    fakeGateway(job);
    const wrapper = mountView();
    await settle();
    expect(wrapper.get(".notice-info").text()).toBe("Waiting for a free processor. Pages appear here as soon as they are ready.");

    useLiveStore().dispatch(makeEvent({ type: "job.started", jobId: id, revision: 4 }));
    await settle();
    expect(wrapper.get(".notice-info").text()).toBe("Opening the document and counting its pages…");
    expect(wrapper.get('[role="progressbar"]').attributes("aria-valuetext")).toBe("Counting pages");

    useLiveStore().dispatch(makeEvent({ type: "job.canceled", jobId: id, revision: 5 }));
    await settle();
    expect(wrapper.text()).toContain("Processing of this document was canceled.");
    expect(wrapper.find(".notice-info").exists()).toBe(false);
  });

  it("says why the job could not be loaded and tries again on request", async () => {
    let up = false;
    stubApi((method, path) => {
      if (path === `/v1/jobs/${id}` && up) return jsonResponse(makeJob({ status: "completed", pageCount: 0 }), { headers: { ETag: '"3"' } });
      return problemResponse(503, "unavailable", "Service unavailable", "The gateway is restarting.");
    });
    const wrapper = mountView();
    await settle();
    expect(wrapper.get("h1").text()).toBe("The document could not be loaded");
    expect(wrapper.get('[role="alert"]').text()).toContain("The gateway is restarting.");

    up = true;
    await buttonNamed(wrapper, "Try again").trigger("click");
    await settle();
    expect(wrapper.get("h1").text()).toBe("report.pdf");
    expect(wrapper.find('[role="alert"]').exists()).toBe(false);
  });

  it("says so when the job does not exist", async () => {
    stubApi(() => problemResponse(404, "not_found", "Not found"));
    const wrapper = mountView();
    await settle();
    expect(wrapper.get("h1").text()).toBe("Document not found");
  });
});
