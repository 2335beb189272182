import { defineStore } from "pinia";
import { ref, shallowRef } from "vue";
import { configureApiClient } from "@/api/client";
import { createTokenProvider } from "@/auth/tokenProvider";
import type { AuthProvider } from "@/auth/provider";

/** Shown on the sign-in screen after the API refused the token. */
export const SESSION_ENDED = "Your session has ended or the access token was not accepted. Please sign in again.";

/**
 * Who is signed in. Views use this store only, never a provider directly, so the
 * way people sign in (token today, OIDC later) can change without touching them.
 */
export const useAuthStore = defineStore("auth", () => {
  const provider = shallowRef<AuthProvider | null>(null);
  const signedIn = ref(false);
  /** Why the person was signed out (shown on the sign-in screen), e.g. after a 401. */
  const notice = ref<string | null>(null);

  function current(): AuthProvider {
    provider.value ??= createTokenProvider();
    return provider.value;
  }

  /**
   * Installs the provider (default: token) and restores the session: once before
   * mounting, and again when credentials arrive in the address. Resolves true
   * when credentials were taken from the address.
   */
  async function init(with_?: AuthProvider): Promise<boolean> {
    if (with_) provider.value = with_;
    const fromAddress = await current().init();
    if (fromAddress) notice.value = null;
    signedIn.value = (await current().getToken()) !== null;
    return fromAddress;
  }

  async function getToken(): Promise<string | null> {
    return current().getToken();
  }

  async function signIn(credentials?: { token: string }): Promise<void> {
    await current().signIn(credentials);
    notice.value = null;
    signedIn.value = (await current().getToken()) !== null;
  }

  /** Ends the session; `reason` is shown on the sign-in screen. */
  async function signOut(reason?: string): Promise<void> {
    await current().signOut();
    notice.value = reason ?? null;
    signedIn.value = false;
  }

  /** Makes the API client send this session's token, and sign out when the API answers 401. */
  function bindApiClient(): void {
    configureApiClient({
      getToken,
      onUnauthorized: () => {
        if (signedIn.value) void signOut(SESSION_ENDED);
      },
    });
  }

  return {
    signedIn,
    notice,
    /** `token` or `redirect`: what the sign-in screen offers. */
    method: () => current().method,
    init,
    getToken,
    signIn,
    signOut,
    bindApiClient,
  };
});
