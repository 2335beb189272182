/**
 * How the app gets a bearer token. Views and stores talk to the `auth` store only;
 * the store delegates to one provider. Today that is the token provider (a link
 * with `#token=` or a pasted token); an OIDC provider can replace it without
 * touching any view: it would say `method: "redirect"`, send people to the
 * identity provider in `signIn()`, finish the code exchange in `init()` and
 * refresh in `getToken()`.
 */
export interface AuthProvider {
  /** `token`: the sign-in screen shows a token form. `redirect`: it shows one "Sign in" button. */
  readonly method: "token" | "redirect";
  /**
   * Called before the app mounts, and again when the address changes without a
   * page load (a sign-in link opened in a tab that already runs the app): picks
   * up credentials handed over in the address (and removes them from it), or
   * restores a session from storage. Resolves true when it took credentials
   * from the address.
   */
  init(): Promise<boolean>;
  /** The bearer token for the next request, or null when signed out. May refresh it. */
  getToken(): Promise<string | null>;
  /** Starts a session. The token provider takes the pasted token; a redirect provider ignores the argument. */
  signIn(credentials?: { token: string }): Promise<void>;
  /** Forgets the session. */
  signOut(): Promise<void>;
}
