export type { ObjectStore, StoredObject, PutOptions } from "./types.ts";
export { FsObjectStore } from "./fs.ts";
export { S3ObjectStore, s3ClientConfig, lightenPayloads, closeAfterChunkedBodies, type S3StoreOptions } from "./s3.ts";
