/**
 * The reconciler contract: `(key) => Result`, level-triggered.
 *
 * A reconciler gets a key (`namespace/name`), reads the current state from
 * informer caches, and makes the world match. It never learns which event
 * caused the call (there may have been many, or a resync, or a retry), so
 * it must compute everything from the state it reads.
 *
 * Outcomes (controller-runtime's):
 * - return nothing / `{}`: done; the key's backoff is reset.
 * - `{ requeueAfterMs }`: done for now, look again after that long (the
 *   backoff is reset; use it for periodic work such as TTLs).
 * - `{ requeue: true }`: try again with the key's rate-limited backoff.
 * - throw an Error: logged, counted, retried with backoff.
 * - throw a `TerminalError`: logged, counted, not retried until the key is
 *   enqueued again by an event.
 */
import type { Logger } from "./log.ts";

export interface Result {
  requeue?: boolean;
  requeueAfterMs?: number;
}

export interface ReconcileContext {
  key: string;
  namespace: string | undefined;
  name: string;
  /** Unique per call; also on every log line of this call. */
  reconcileId: string;
  log: Logger;
  /** Aborted when the controller stops (shutdown or lost leadership). */
  signal: AbortSignal;
}

type ReconcileReturn = Result | undefined;

/** `(key, ctx) => Result`; returning nothing (`async () => {}`) means success. */
export type Reconciler = (key: string, ctx: ReconcileContext) => Promise<ReconcileReturn> | ReconcileReturn;

/** An error that retrying cannot fix (invalid spec, policy refusal). */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TerminalError";
  }
}

export function isTerminal(err: unknown): boolean {
  return err instanceof TerminalError;
}

/** A reconciler of one object type: the cached object for the key (undefined: gone), typed. */
export type ObjectReconciler<T> = (
  obj: T | undefined,
  ctx: ReconcileContext,
) => Promise<ReconcileReturn> | ReconcileReturn;

/**
 * Adapts an object reconciler to the key contract: it reads the key's
 * object from `cache` (an informer) on every call, so it stays
 * level-triggered and never sees a stale object handed along with an event.
 */
export function forObjects<T>(
  cache: { get(key: string): T | undefined },
  reconcile: ObjectReconciler<T>,
): Reconciler {
  return (key, ctx) => reconcile(cache.get(key), ctx);
}
