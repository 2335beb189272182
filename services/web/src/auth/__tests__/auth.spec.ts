import { createPinia, setActivePinia } from "pinia";
import { beforeEach, describe, expect, it } from "vitest";
import { api } from "@/api/client";
import { createTokenProvider, TOKEN_STORAGE_KEY } from "@/auth/tokenProvider";
import { SESSION_ENDED, useAuthStore } from "@/stores/auth";
import { jsonResponse, problemResponse, stubApi } from "@/__tests__/helpers";

describe("sign-in with a bearer token", () => {
  beforeEach(() => {
    sessionStorage.clear();
    setActivePinia(createPinia());
    window.history.replaceState(null, "", "/");
  });

  it("takes the token from the address fragment, keeps it in sessionStorage and removes it from the address bar", async () => {
    window.history.replaceState(null, "", "/jobs/abc?x=1#token=s3cret-token");
    const auth = useAuthStore();
    await auth.init(createTokenProvider());

    expect(auth.signedIn).toBe(true);
    expect(sessionStorage.getItem(TOKEN_STORAGE_KEY)).toBe("s3cret-token");
    expect(window.location.href).not.toContain("s3cret-token");
    expect(window.location.pathname + window.location.search + window.location.hash).toBe("/jobs/abc?x=1");
  });

  it("sends the token to the API and signs out with a message on 401", async () => {
    const auth = useAuthStore();
    await auth.init(createTokenProvider());
    auth.bindApiClient();
    await auth.signIn({ token: "pasted-token" });

    const fetchMock = stubApi(() => jsonResponse({ items: [], nextCursor: null }));
    await api.listJobs();
    const headers = fetchMock.mock.calls[0]![1]!.headers as Headers;
    expect(headers.get("Authorization")).toBe("Bearer pasted-token");

    stubApi(() => problemResponse(401, "unauthorized", "Missing or invalid bearer token"));
    await expect(api.listJobs()).rejects.toMatchObject({ status: 401, code: "unauthorized" });
    await Promise.resolve();

    expect(auth.signedIn).toBe(false);
    expect(auth.notice).toBe(SESSION_ENDED);
    expect(sessionStorage.getItem(TOKEN_STORAGE_KEY)).toBeNull();
  });

  it("refuses an empty or broken pasted token", async () => {
    const auth = useAuthStore();
    await auth.init(createTokenProvider());
    await expect(auth.signIn({ token: "  " })).rejects.toThrow("Enter an access token.");
    await expect(auth.signIn({ token: "abc def" })).rejects.toThrow("no spaces");
    expect(auth.signedIn).toBe(false);
  });

  it("signs out", async () => {
    const auth = useAuthStore();
    await auth.init(createTokenProvider());
    await auth.signIn({ token: "t" });
    await auth.signOut();
    expect(auth.signedIn).toBe(false);
    expect(auth.notice).toBeNull();
  });
});
