/**
 * Roster's controller runtime: informers, work queue, controllers, leader
 * election, server-side apply, status and condition helpers, events,
 * metrics, logs. See docs/runtime.md.
 */
export * from "./apply.ts";
export * from "./backoff.ts";
export * from "./client.ts";
export * from "./conditions.ts";
export * from "./controller.ts";
export * from "./events.ts";
export * from "./executor.ts";
export * from "./informer.ts";
export * from "./leader.ts";
export * from "./log.ts";
export * from "./manager.ts";
export * from "./membership.ts";
export * from "./metrics.ts";
export * from "./object.ts";
export * from "./ratelimit.ts";
export * from "./reconcile.ts";
export * from "./server.ts";
export * from "./status.ts";
export * from "./store.ts";
export * from "./tracker.ts";
export * from "./transform.ts";
export * from "./workqueue.ts";
