import type { AuthProvider } from "./provider";

/** sessionStorage key of the bearer token: it lives as long as the tab does. */
export const TOKEN_STORAGE_KEY = "docflow.token";

/** Name of the address fragment parameter that `npm start` prints: `/#token=<token>`. */
export const TOKEN_FRAGMENT_PARAM = "token";

export interface TokenProviderOptions {
  storage?: Storage;
  location?: Pick<Location, "hash" | "pathname" | "search">;
  history?: Pick<History, "replaceState" | "state">;
}

/**
 * Bearer-token sign-in: `#token=<token>` in the address, or a pasted token.
 * The token is kept in sessionStorage and removed from the address bar at once,
 * so it does not end up in bookmarks or the history.
 */
export function createTokenProvider(options: TokenProviderOptions = {}): AuthProvider {
  const storage = options.storage ?? window.sessionStorage;
  const location = options.location ?? window.location;
  const history = options.history ?? window.history;

  function read(): string | null {
    try {
      return storage.getItem(TOKEN_STORAGE_KEY);
    } catch {
      return null;
    }
  }

  return {
    method: "token",

    async init() {
      const fragment = location.hash.replace(/^#/, "");
      if (!fragment) return false;
      const params = new URLSearchParams(fragment);
      const token = params.get(TOKEN_FRAGMENT_PARAM)?.trim();
      if (token === undefined) return false;
      if (token) storage.setItem(TOKEN_STORAGE_KEY, token);
      params.delete(TOKEN_FRAGMENT_PARAM);
      const rest = params.toString();
      history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
      return token !== "";
    },

    async getToken() {
      return read();
    },

    async signIn(credentials) {
      const token = credentials?.token.trim();
      if (!token) throw new Error("Enter an access token.");
      if (/\s/.test(token)) throw new Error("An access token has no spaces. Check that you copied it whole.");
      storage.setItem(TOKEN_STORAGE_KEY, token);
    },

    async signOut() {
      storage.removeItem(TOKEN_STORAGE_KEY);
    },
  };
}
