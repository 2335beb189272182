import { onScopeDispose } from "vue";

/** Whether the browser believes it is online (true where it cannot tell). */
export function isBrowserOnline(): boolean {
  return typeof navigator === "undefined" || navigator.onLine !== false;
}

/** Calls `offline` and `online` when the browser loses and regains its connection, while the calling scope lives. */
export function useConnectivity(handlers: { offline(): void; online(): void }): void {
  if (typeof window === "undefined") return;
  const offline = () => handlers.offline();
  const online = () => handlers.online();
  window.addEventListener("offline", offline);
  window.addEventListener("online", online);
  onScopeDispose(() => {
    window.removeEventListener("offline", offline);
    window.removeEventListener("online", online);
  });
}
