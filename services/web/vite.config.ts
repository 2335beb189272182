import { fileURLToPath, URL } from "node:url";
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vite";

/** Where `vite dev` and `vite preview` send API calls: the gateway started by `npm start`. */
const apiTarget = process.env["DOCFLOW_API_URL"] ?? "http://127.0.0.1:8080";
const proxy = { "/v1": { target: apiTarget, changeOrigin: false } };

export default defineConfig({
  plugins: [vue()],
  resolve: {
    alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) },
    // One OpenTelemetry API in the bundle: instrumentations hoisted to the workspace root would
    // otherwise import the root's (newer, the services') copy, which does not see the propagator
    // and context manager registered with the app's, and no traceparent would be sent.
    dedupe: ["@opentelemetry/api"],
  },
  server: { proxy },
  preview: { proxy },
  build: {
    target: "es2022",
    sourcemap: true,
  },
});
