export * from "./ids.ts";
export * from "./errors.ts";
export * from "./job.ts";
export * from "./messages.ts";
export * from "./events.ts";
export * from "./keys.ts";
export * from "./http.ts";
