import { join, resolve } from "node:path";
import { FsObjectStore, S3ObjectStore, type ObjectStore } from "./object-store/index.ts";

export interface StorageConfig {
  DOCFLOW_STORAGE: "fs" | "s3";
  DOCFLOW_DATA_DIR: string;
  DOCFLOW_S3_BUCKET: string;
  DOCFLOW_S3_ENDPOINT?: string | undefined;
  DOCFLOW_S3_CREATE_BUCKET: boolean;
  AWS_REGION: string;
  AWS_ACCESS_KEY_ID?: string | undefined;
  AWS_SECRET_ACCESS_KEY?: string | undefined;
}

/** Builds the configured object store (and creates its bucket where asked to). */
export async function openObjectStore(config: StorageConfig): Promise<ObjectStore> {
  if (config.DOCFLOW_STORAGE === "fs") {
    const store = new FsObjectStore(join(resolve(config.DOCFLOW_DATA_DIR), "objects"));
    await store.check();
    return store;
  }
  const store = new S3ObjectStore({
    bucket: config.DOCFLOW_S3_BUCKET,
    endpoint: config.DOCFLOW_S3_ENDPOINT,
    region: config.AWS_REGION,
    credentials:
      config.AWS_ACCESS_KEY_ID && config.AWS_SECRET_ACCESS_KEY
        ? { accessKeyId: config.AWS_ACCESS_KEY_ID, secretAccessKey: config.AWS_SECRET_ACCESS_KEY }
        : undefined,
  });
  if (config.DOCFLOW_S3_CREATE_BUCKET) await store.ensureBucket();
  return store;
}
