import { createRouter, createWebHistory, type Router } from "vue-router";
import { useAuthStore } from "@/stores/auth";

declare module "vue-router" {
  interface RouteMeta {
    /** Reachable without signing in. */
    public?: boolean;
    /** Shown in the tab title: "<title> · docflow". */
    title?: string;
  }
}

/**
 * Views are loaded on first visit. History mode: the gateway serves `index.html`
 * for any non-API path (so `/jobs/<id>` can be bookmarked and reloaded).
 */
export function createAppRouter(base = import.meta.env.BASE_URL): Router {
  const router = createRouter({
    history: createWebHistory(base),
    routes: [
      { path: "/", name: "jobs", component: () => import("@/views/JobsView.vue"), meta: { title: "Documents" } },
      { path: "/jobs/:id", name: "job", component: () => import("@/views/JobView.vue"), props: true, meta: { title: "Document" } },
      { path: "/sign-in", name: "sign-in", component: () => import("@/views/SignInView.vue"), meta: { public: true, title: "Sign in" } },
      { path: "/:pathMatch(.*)*", name: "not-found", component: () => import("@/views/NotFoundView.vue"), meta: { public: true, title: "Not found" } },
    ],
    scrollBehavior: (_to, _from, saved) => saved ?? { top: 0 },
  });

  router.beforeEach(async (to) => {
    const auth = useAuthStore();
    // A sign-in link opened in a tab that already runs the app changes only the
    // fragment (no page load): let the auth provider take the credentials here too.
    if (to.hash && (await auth.init())) return { path: to.path, query: to.query, hash: "", replace: true };
    if (!to.meta.public && !auth.signedIn) {
      return { name: "sign-in", query: to.fullPath === "/" ? {} : { redirect: to.fullPath } };
    }
    if (to.name === "sign-in" && auth.signedIn) return { path: "/" };
    return true;
  });

  router.afterEach((to) => {
    document.title = to.meta.title ? `${to.meta.title} · docflow` : "docflow";
  });

  return router;
}
