import { onScopeDispose, readonly, ref } from "vue";

/** The current time, refreshed every `intervalMs` while the calling component lives (for "5 min ago"). */
export function useNow(intervalMs = 30_000) {
  const now = ref(Date.now());
  const timer = setInterval(() => (now.value = Date.now()), intervalMs);
  onScopeDispose(() => clearInterval(timer));
  return readonly(now);
}
