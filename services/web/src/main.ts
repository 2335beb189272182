import "@/zod-csp";
import { createPinia } from "pinia";
import { createApp } from "vue";
import App from "@/App.vue";
import { loadRuntimeConfig } from "@/config";
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
void loadRuntimeConfig();

app.use(createAppRouter());
app.mount("#app");
