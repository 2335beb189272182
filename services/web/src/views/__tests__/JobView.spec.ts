import { mount, type VueWrapper } from "@vue/test-utils";
import { beforeEach, describe, expect, it } from "vitest";
import type { PageInfo } from "@/api/types";
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
  stubApi((method, path) => {
    requests.push(`${method} ${path}`);
    if (path === `/v1/jobs/${id}`) return jsonResponse(job, { headers: { ETag: `"${revision}"` } });
    const pageMatch = new RegExp(`^/v1/jobs/${id}/pages/(\\d+)$`).exec(path);
    if (pageMatch) {
      const n = Number(pageMatch[1]);
      return ready.has(n) ? jsonResponse(page(n)) : problemResponse(404, "page_not_ready", "This page has not been processed yet");
    }
    if (/\/thumbnail$|\/preview$/.test(path)) return new Response(new Blob(["img"], { type: "image/webp" }), { headers: { "Content-Type": "image/webp" } });
    if (path === `/v1/jobs/${id}/result`) {
      return job.status === "completed"
        ? jsonResponse({ job, pages: [...ready].map(page) })
        : problemResponse(409, "job_not_ready", "The job has not finished processing yet");
    }
    return problemResponse(404, "route_not_found", "No such endpoint");
  });
  return { ready, requests };
}

function mountView(): VueWrapper {
  const { pinia } = setupApp();
  return mount(JobView, { props: { id }, global: { plugins: [pinia, testRouter()] }, attachTo: document.body });
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

    const dialog = wrapper.get("dialog");
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

    await wrapper.findAll("button").find((button) => button.text() === "Delete")!.trigger("click");
    await settle();
    const dialog = wrapper.get('dialog[role="alertdialog"]');
    expect(dialog.text()).toContain("Delete “report.pdf”?");
    expect(dialog.text()).toContain("This cannot be undone.");
    expect(gateway.requests.some((request) => request.startsWith("DELETE"))).toBe(false);

    await dialog.findAll("button").find((button) => button.text() === "Delete document")!.trigger("click");
    await settle();
    expect(gateway.requests).toContain(`DELETE /v1/jobs/${id}`);
    expect(router.currentRoute.value.name).toBe("jobs");
  });

  it("says so when the job does not exist", async () => {
    stubApi(() => problemResponse(404, "not_found", "Not found"));
    const wrapper = mountView();
    await settle();
    expect(wrapper.get("h1").text()).toBe("Document not found");
  });
});
