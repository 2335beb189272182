import "@/zod-csp";
import { createPinia } from "pinia";
import { createApp } from "vue";
import App from "@/App.vue";
import { authorizationHeader } from "@/api/client";
import { loadRuntimeConfig, runtimeConfig } from "@/config";
import { createAppRouter } from "@/router";
import { useAuthStore } from "@/stores/auth";
import "@/styles/main.css";

const app = createApp(App);
const pinia = createPinia();
app.use(pinia);

const auth = useAuthStore(pinia);
auth.bindApiClient();
// Takes `#token=` out of the address before the router reads it.
await auth.init();
void loadRuntimeConfig().then(async () => {
  // Tracing is loaded only where the gateway forwards browser spans (a separate chunk).
  const endpoint = runtimeConfig.tracesEndpoint;
  if (!endpoint) return;
  const { startBrowserTelemetry } = await import("@/telemetry/browser");
  startBrowserTelemetry({ endpoint, headers: authorizationHeader });
});

app.use(createAppRouter());
app.mount("#app");
