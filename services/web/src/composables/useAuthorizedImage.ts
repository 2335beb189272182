import { onScopeDispose, ref, toValue, watch, type MaybeRefOrGetter, type Ref } from "vue";
import { api } from "@/api/client";

/** At most this many image requests at once, so a 500-page grid does not flood the gateway. */
const MAX_PARALLEL = 6;
let running = 0;
const waiting: Array<() => void> = [];

async function withSlot<T>(task: () => Promise<T>): Promise<T> {
  if (running >= MAX_PARALLEL) await new Promise<void>((resolve) => waiting.push(resolve));
  running += 1;
  try {
    return await task();
  } finally {
    running -= 1;
    waiting.shift()?.();
  }
}

export type ImageState = "idle" | "loading" | "loaded" | "error";

/**
 * An image that needs the bearer token: `<img src>` cannot send headers, so the
 * bytes are fetched with `Authorization` and shown through an object URL, which
 * is revoked when the URL changes and when the component unmounts.
 *
 * With `visibleWhen` (an element), loading waits until it scrolls near the viewport.
 */
export function useAuthorizedImage(url: MaybeRefOrGetter<string | null>, visibleWhen?: Ref<HTMLElement | null>) {
  const src = ref<string | null>(null);
  const state = ref<ImageState>("idle");
  const visible = ref(!visibleWhen || typeof IntersectionObserver === "undefined");
  let controller: AbortController | null = null;
  let observer: IntersectionObserver | null = null;

  function release(): void {
    controller?.abort();
    controller = null;
    if (src.value) URL.revokeObjectURL(src.value);
    src.value = null;
  }

  async function load(target: string): Promise<void> {
    release();
    const own = new AbortController();
    controller = own;
    state.value = "loading";
    try {
      const blob = await withSlot(() => (own.signal.aborted ? Promise.reject(own.signal.reason) : api.getBlob(target, own.signal)));
      if (own.signal.aborted) return;
      src.value = URL.createObjectURL(blob);
      state.value = "loaded";
    } catch {
      if (!own.signal.aborted) state.value = "error";
    }
  }

  if (visibleWhen && !visible.value) {
    watch(
      visibleWhen,
      (element) => {
        observer?.disconnect();
        if (!element || visible.value) return;
        observer = new IntersectionObserver(
          (entries) => {
            if (entries.some((entry) => entry.isIntersecting)) {
              visible.value = true;
              observer?.disconnect();
            }
          },
          { rootMargin: "300px" },
        );
        observer.observe(element);
      },
      { immediate: true },
    );
  }

  watch(
    [() => toValue(url), visible],
    ([target, isVisible]) => {
      if (!target) {
        release();
        state.value = "idle";
      } else if (isVisible) {
        void load(target);
      }
    },
    { immediate: true },
  );

  onScopeDispose(() => {
    observer?.disconnect();
    release();
  });

  return {
    src,
    state,
    /** Tries again after an error. */
    reload: () => {
      const target = toValue(url);
      if (target) void load(target);
    },
  };
}
