import { JobEvent, type RealtimeCredentials } from "@docflow/contracts";
import { defineStore } from "pinia";
import { computed, ref } from "vue";
import { api, isApiError } from "@/api/client";
import { runtimeConfig } from "@/config";
import type { LiveConnection } from "@/live/natsTransport";
import { useJobsStore } from "./jobs";

/**
 * - `idle`: not started (signed out).
 * - `connecting`: first connection on its way.
 * - `live`: subscribed; events arrive as they happen.
 * - `reconnecting`: the connection dropped; retrying with fresh credentials.
 * - `polling`: the gateway offers no live updates; jobs are re-read every few seconds.
 */
export type LiveStatus = "idle" | "connecting" | "live" | "reconnecting" | "polling";

export type LiveEventListener = (event: JobEvent) => void;

/** Retry delays after a failure, in ms (the last repeats), each with ±20 % jitter. */
export const RECONNECT_DELAYS_MS = [1_000, 2_000, 4_000, 8_000, 15_000, 30_000] as const;

/** Renew credentials this long before they expire (or at 80 % of their life when shorter). */
const RENEW_MARGIN_MS = 60_000;

function jitter(ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}

/** The transport is loaded on first use so the NATS client is not in the first bundle. */
async function openConnection(credentials: RealtimeCredentials, onMessage: (data: string) => void): Promise<LiveConnection> {
  const { openLiveConnection } = await import("@/live/natsTransport");
  return openLiveConnection(credentials, onMessage);
}

/**
 * Live updates: NATS over WebSocket with short-lived credentials from
 * `POST /v1/realtime/credentials`, renewed before they expire. Every event goes
 * to the jobs store (which ignores stale revisions) and to listeners (the job
 * view, for `page.ready`). After any interruption, state is re-read over HTTP so
 * nothing is missed. Without a credentials endpoint (404/501) it polls instead.
 */
export const useLiveStore = defineStore("live", () => {
  const status = ref<LiveStatus>("idle");
  /** When the next reconnect attempt is due (epoch ms), while reconnecting. */
  const nextAttemptAt = ref<number | null>(null);
  const listeners = new Set<LiveEventListener>();

  let running = false;
  let connection: LiveConnection | null = null;
  let failures = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let renewTimer: ReturnType<typeof setTimeout> | undefined;
  let pollTimer: ReturnType<typeof setInterval> | undefined;
  /** Bumped on start/stop so callbacks of an older run do nothing. */
  let generation = 0;

  const message = computed(() => {
    switch (status.value) {
      case "connecting":
        return "Connecting to live updates…";
      case "live":
        return "Live updates on";
      case "reconnecting":
        return "Live updates paused, reconnecting…";
      case "polling":
        return `Live updates unavailable; checking for changes every ${Math.round(runtimeConfig.pollIntervalMs / 1000)} s`;
      default:
        return "";
    }
  });

  /** Subscribes to every accepted event; returns the unsubscribe function. */
  function onEvent(listener: LiveEventListener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  }

  /** Handles one raw message from the subject. Malformed events are dropped. */
  function receive(data: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      console.warn("docflow: ignored a live event that is not JSON");
      return;
    }
    const result = JobEvent.safeParse(parsed);
    if (!result.success) {
      console.warn("docflow: ignored a live event that does not match the contract", result.error.issues);
      return;
    }
    dispatch(result.data);
  }

  /** Applies an event to the jobs store and tells the listeners. */
  function dispatch(event: JobEvent): void {
    useJobsStore().applyEvent(event);
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (error) {
        console.error(error);
      }
    }
  }

  function resync(): void {
    void useJobsStore().resync();
  }

  function clearTimers(): void {
    clearTimeout(retryTimer);
    clearTimeout(renewTimer);
    clearInterval(pollTimer);
    retryTimer = renewTimer = pollTimer = undefined;
  }

  function scheduleReconnect(run: number): void {
    if (run !== generation) return;
    status.value = "reconnecting";
    const delay = jitter(RECONNECT_DELAYS_MS[Math.min(failures, RECONNECT_DELAYS_MS.length - 1)] ?? 30_000);
    failures += 1;
    nextAttemptAt.value = Date.now() + delay;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => void connect(run), delay);
  }

  function scheduleRenewal(run: number, expiresAt: string): void {
    const lifetime = Date.parse(expiresAt) - Date.now();
    if (Number.isNaN(lifetime)) return;
    const renewIn = Math.max(5_000, Math.min(lifetime - RENEW_MARGIN_MS, lifetime * 0.8));
    clearTimeout(renewTimer);
    renewTimer = setTimeout(() => void renew(run), renewIn);
  }

  function startPolling(run: number): void {
    if (run !== generation) return;
    status.value = "polling";
    nextAttemptAt.value = null;
    clearInterval(pollTimer);
    pollTimer = setInterval(resync, runtimeConfig.pollIntervalMs);
    resync();
  }

  /** Fetches credentials. Returns null when the run should stop trying (polling, signed out). */
  async function credentialsOrFallback(run: number): Promise<RealtimeCredentials | "retry" | null> {
    try {
      return await api.realtimeCredentials();
    } catch (error) {
      if (run !== generation) return null;
      if (isApiError(error) && (error.status === 404 || error.status === 501)) {
        startPolling(run);
        return null;
      }
      if (isApiError(error) && error.status === 401) return null; // the auth store signs out
      return "retry";
    }
  }

  /** Adopts a new connection: watches it and replaces (closes) the previous one. */
  function adopt(run: number, next: LiveConnection, credentials: RealtimeCredentials): void {
    const previous = connection;
    connection = next;
    void previous?.close().catch(() => undefined);
    void next.closed.then(() => {
      if (run !== generation || connection !== next) return;
      connection = null;
      clearTimeout(renewTimer);
      scheduleReconnect(run);
    });
    scheduleRenewal(run, credentials.expiresAt);
  }

  async function connect(run: number): Promise<void> {
    if (run !== generation) return;
    const credentials = await credentialsOrFallback(run);
    if (run !== generation || credentials === null) return;
    if (credentials === "retry") return scheduleReconnect(run);
    let next: LiveConnection;
    try {
      next = await openConnection(credentials, receive);
    } catch {
      return scheduleReconnect(run);
    }
    if (run !== generation) {
      void next.close().catch(() => undefined);
      return;
    }
    adopt(run, next, credentials);
    failures = 0;
    nextAttemptAt.value = null;
    status.value = "live";
    // Whatever happened before the subscription (or while disconnected) is read over HTTP.
    resync();
  }

  /** Make-before-break: a new connection with fresh credentials, then the old one closes. */
  async function renew(run: number): Promise<void> {
    if (run !== generation || status.value !== "live") return;
    const credentials = await credentialsOrFallback(run);
    if (run !== generation || credentials === null) return;
    if (credentials === "retry") {
      renewTimer = setTimeout(() => void renew(run), jitter(RECONNECT_DELAYS_MS[1]));
      return;
    }
    try {
      const next = await openConnection(credentials, receive);
      if (run !== generation) return void next.close().catch(() => undefined);
      adopt(run, next, credentials);
    } catch {
      renewTimer = setTimeout(() => void renew(run), jitter(RECONNECT_DELAYS_MS[1]));
    }
  }

  /** Tries again now (the "Reconnect now" button, or the browser coming back online). */
  function reconnectNow(): void {
    if (!running || status.value !== "reconnecting") return;
    clearTimeout(retryTimer);
    void connect(generation);
  }

  function onOnline(): void {
    reconnectNow();
  }

  /** Starts live updates (after sign-in). Safe to call twice. */
  function start(): void {
    if (running) return;
    running = true;
    failures = 0;
    const run = ++generation;
    status.value = "connecting";
    window.addEventListener("online", onOnline);
    void connect(run);
  }

  /** Stops live updates and polling (sign out). */
  function stop(): void {
    running = false;
    generation += 1;
    clearTimers();
    window.removeEventListener("online", onOnline);
    const open = connection;
    connection = null;
    void open?.close().catch(() => undefined);
    status.value = "idle";
    nextAttemptAt.value = null;
  }

  return { status, message, nextAttemptAt, onEvent, receive, dispatch, start, stop, reconnectNow };
});
