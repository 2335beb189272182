import type { Job } from "@docflow/contracts";
import { onScopeDispose, ref, toValue, type MaybeRefOrGetter } from "vue";
import { api } from "@/api/client";

/**
 * Download of a job's original file. The bytes need the bearer token, so they come as a blob
 * saved through a link to its object URL, which lives until the calling scope ends (the browser
 * may still be saving it).
 */
export function useSourceDownload(job: MaybeRefOrGetter<Job | undefined>) {
  const downloading = ref(false);
  const error = ref<string | null>(null);
  let objectUrl: string | null = null;

  async function download(): Promise<void> {
    const current = toValue(job);
    if (!current || downloading.value) return;
    downloading.value = true;
    error.value = null;
    try {
      const blob = await api.getBlob(api.sourceUrl(current.id));
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(blob);
      const link = document.createElement("a");
      link.href = objectUrl;
      link.download = current.filename;
      document.body.append(link);
      link.click();
      link.remove();
    } catch (caught) {
      error.value = caught instanceof Error ? caught.message : String(caught);
    } finally {
      downloading.value = false;
    }
  }

  onScopeDispose(() => {
    if (objectUrl) URL.revokeObjectURL(objectUrl);
  });

  return { downloading, error, download };
}
