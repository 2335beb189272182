import { fileURLToPath, URL } from "node:url";
import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vitest/config";

/**
 * Component tests of the web app. Runs on its own
 * (`npx vitest run --config services/web/vitest.config.ts` from the repo root) or as
 * the project named `web` of the root Vitest config.
 */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  plugins: [vue()],
  resolve: {
    alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) },
  },
  test: {
    name: "web",
    environment: "jsdom",
    include: ["src/**/__tests__/*.spec.ts"],
    restoreMocks: true,
    unstubGlobals: true,
  },
});
