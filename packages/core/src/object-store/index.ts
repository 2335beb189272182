export type { ObjectStore, StoredObject, PutOptions } from "./types.ts";
export { FsObjectStore } from "./fs.ts";
export { S3ObjectStore, type S3StoreOptions } from "./s3.ts";
