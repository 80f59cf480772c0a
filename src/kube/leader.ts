/**
 * Leader election on a `coordination.k8s.io/v1` Lease, with client-go's
 * algorithm and controller-runtime's default timings (lease 15 s, renew
 * deadline 10 s, retry period 2 s).
 *
 * - Candidates try to acquire every `retryPeriod` (jittered by up to 20%).
 *   A lease held by someone else counts as valid until `leaseDurationSeconds`
 *   after this candidate last saw it change, measured on the candidate's own
 *   clock (no trust in the other side's timestamps, so clock skew between
 *   replicas does not matter).
 * - The leader renews every `retryPeriod`; if it cannot renew for
 *   `renewDeadline` it gives up leadership (before the lease can expire for
 *   the others, since renewDeadline < leaseDuration).
 * - Every write is a compare-and-swap on the Lease's resourceVersion, so two
 *   candidates can never both succeed.
 * - On graceful stop a leader releases the lease (empty holder) so another
 *   replica takes over within one retry period instead of a lease duration.
 *
 * Guarantees: `isLeader()` is true only between a successful acquire and the
 * moment leadership is given up (renew deadline passed, or stop);
 * `onStoppedLeading` runs before `run()` resolves; the metric
 * `leader_election_master_status{name}` follows `isLeader()`.
 */
import type { Clock } from "../util/clock.ts";
import { systemClock } from "../util/clock.ts";
import { sleep } from "./backoff.ts";
import { isAlreadyExists, isConflict, isNotFound, type KubeClient } from "./client.ts";
import type { Logger } from "./log.ts";
import { silentLogger } from "./log.ts";
import type { RuntimeMetrics } from "./metrics.ts";
import { type KubeObject, resourcePath, resources } from "./object.ts";

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaderElectionTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const defaultLeaderElectionTimings: LeaderElectionTimings = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

export interface LeaderElectionOptions extends Partial<LeaderElectionTimings> {
  client: KubeClient;
  namespace: string;
  /** Lease name. */
  name: string;
  /** Unique per replica (pod name + random suffix). */
  identity: string;
  /** Release the lease on graceful stop (default true). */
  releaseOnCancel?: boolean;
  clock?: Clock;
  logger?: Logger;
  metrics?: RuntimeMetrics;
  random?: () => number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  onNewLeader?: (identity: string) => void;
}

export type ElectionOutcome = "stopped" | "lost";

export interface LeaderElector {
  readonly identity: string;
  /** Campaigns, leads, and resolves when leadership is lost or `signal` aborts (releasing if leading). */
  run(signal: AbortSignal): Promise<ElectionOutcome>;
  isLeader(): boolean;
  /** The holder last observed (possibly this replica). */
  leader(): string | undefined;
  /** Undefined when healthy; an explanation when the leader has not renewed for too long. */
  check(): string | undefined;
}

/** Go's metav1.MicroTime format: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

export function leaderElector(options: LeaderElectionOptions): LeaderElector {
  const t: LeaderElectionTimings = {
    leaseDurationMs: options.leaseDurationMs ?? defaultLeaderElectionTimings.leaseDurationMs,
    renewDeadlineMs: options.renewDeadlineMs ?? defaultLeaderElectionTimings.renewDeadlineMs,
    retryPeriodMs: options.retryPeriodMs ?? defaultLeaderElectionTimings.retryPeriodMs,
  };
  if (!(t.leaseDurationMs > t.renewDeadlineMs && t.renewDeadlineMs > t.retryPeriodMs * 1.2)) {
    throw new Error("leader election needs leaseDuration > renewDeadline > 1.2 × retryPeriod");
  }
  const { client, namespace, name, identity } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const log = (options.logger ?? silentLogger()).child({ lease: `${namespace}/${name}`, identity });
  const metrics = options.metrics;
  const path = resourcePath(resources.leases, { namespace, name });
  const collection = resourcePath(resources.leases, { namespace });
  const leaseSeconds = Math.max(1, Math.ceil(t.leaseDurationMs / 1000));

  let leading = false;
  let observed: LeaseSpec | undefined;
  let observedRaw = "";
  let observedTime = 0;
  let observedRv: string | undefined;
  let lastRenew = 0;
  let lastHolder: string | undefined;

  function setLeading(v: boolean): void {
    leading = v;
    metrics?.leaderStatus.set({ name }, v ? 1 : 0);
  }

  function observe(spec: LeaseSpec, rv: string | undefined, now: number): void {
    const raw = JSON.stringify(spec);
    if (raw !== observedRaw) {
      observedRaw = raw;
      observed = spec;
      observedTime = now;
    }
    observedRv = rv;
    const holder = spec.holderIdentity || undefined;
    if (holder !== lastHolder) {
      lastHolder = holder;
      if (holder) {
        log.info({ leader: holder }, "new leader observed");
        options.onNewLeader?.(holder);
      }
    }
  }

  async function call<R>(fn: (signal: AbortSignal) => Promise<R>, timeoutMs: number): Promise<R> {
    const ac = new AbortController();
    const timer = clock.setTimer(
      () => ac.abort(new Error(`lease request timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      return await fn(ac.signal);
    } finally {
      timer.cancel();
    }
  }

  /** One attempt; true if this replica holds the lease afterwards. */
  async function tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    const now = clock.now();
    const desired = (prev: LeaseSpec | undefined): LeaseSpec => {
      const mine = prev?.holderIdentity === identity;
      return {
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: mine && prev?.acquireTime ? prev.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: mine
          ? (prev?.leaseTransitions ?? 0)
          : (prev?.leaseTransitions ?? 0) + (prev ? 1 : 0),
      };
    };
    let current: Lease;
    try {
      current = await call((signal) => client.request<Lease>({ method: "GET", path, signal }), timeoutMs);
    } catch (err) {
      if (!isNotFound(err)) {
        log.warn({ err: String(err) }, "reading the lease failed");
        return false;
      }
      const spec = desired(undefined);
      try {
        const created = await call(
          (signal) =>
            client.request<Lease>({
              method: "POST",
              path: collection,
              body: {
                apiVersion: "coordination.k8s.io/v1",
                kind: "Lease",
                metadata: { name, namespace },
                spec,
              },
              signal,
            }),
          timeoutMs,
        );
        observe(created.spec ?? spec, created.metadata.resourceVersion, now);
        return true;
      } catch (err2) {
        if (!isAlreadyExists(err2)) log.warn({ err: String(err2) }, "creating the lease failed");
        return false;
      }
    }
    const spec = current.spec ?? {};
    observe(spec, current.metadata.resourceVersion, now);
    const holder = spec.holderIdentity;
    const durationMs = (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (holder && holder !== identity && observedTime + durationMs > now) return false;
    const next = desired(spec);
    try {
      const updated = await call(
        (signal) =>
          client.request<Lease>({
            method: "PUT",
            path,
            body: { ...current, metadata: { ...current.metadata, managedFields: undefined }, spec: next },
            signal,
          }),
        timeoutMs,
      );
      observe(updated.spec ?? next, updated.metadata.resourceVersion, now);
      return true;
    } catch (err) {
      if (!isConflict(err)) log.warn({ err: String(err) }, "updating the lease failed");
      return false;
    }
  }

  async function release(): Promise<void> {
    if (!observed || observed.holderIdentity !== identity || !observedRv) return;
    const now = clock.now();
    try {
      await call(
        (signal) =>
          client.request<Lease>({
            method: "PUT",
            path,
            body: {
              apiVersion: "coordination.k8s.io/v1",
              kind: "Lease",
              metadata: { name, namespace, resourceVersion: observedRv },
              spec: {
                leaseDurationSeconds: 1,
                acquireTime: microTime(now),
                renewTime: microTime(now),
                leaseTransitions: observed?.leaseTransitions ?? 0,
              },
            },
            signal,
          }),
        t.renewDeadlineMs,
      );
      log.info("released the lease");
    } catch (err) {
      log.warn({ err: String(err) }, "releasing the lease failed; it will expire");
    }
  }

  return {
    identity,
    isLeader: () => leading,
    leader: () => lastHolder,
    check() {
      if (!leading) return undefined;
      const since = clock.now() - lastRenew;
      return since > t.leaseDurationMs ? `lease not renewed for ${since} ms` : undefined;
    },

    async run(signal) {
      metrics?.leaderStatus.set({ name }, 0);
      log.info({ ...t }, "campaigning for leadership");
      // Acquire.
      while (!signal.aborted) {
        if (await tryAcquireOrRenew(t.renewDeadlineMs)) break;
        await sleep(clock, t.retryPeriodMs * (1 + 0.2 * random()), signal);
      }
      if (signal.aborted) return "stopped";
      lastRenew = clock.now();
      setLeading(true);
      log.info("became leader");
      options.onStartedLeading?.();
      // Renew until the deadline passes without a successful renewal, or until stopped.
      let outcome: ElectionOutcome = "stopped";
      while (!signal.aborted) {
        await sleep(clock, t.retryPeriodMs, signal);
        if (signal.aborted) break;
        let renewed = false;
        while (!signal.aborted) {
          const left = lastRenew + t.renewDeadlineMs - clock.now();
          if (left <= 0) break;
          if (await tryAcquireOrRenew(Math.max(100, left))) {
            renewed = true;
            break;
          }
          if (clock.now() - lastRenew >= t.renewDeadlineMs) break;
          await sleep(
            clock,
            Math.min(t.retryPeriodMs, Math.max(0, lastRenew + t.renewDeadlineMs - clock.now())),
            signal,
          );
        }
        if (signal.aborted) break;
        if (!renewed) {
          outcome = "lost";
          break;
        }
        lastRenew = clock.now();
      }
      setLeading(false);
      if (outcome === "lost")
        log.error({ renewDeadlineMs: t.renewDeadlineMs }, "leadership lost: renew deadline passed");
      options.onStoppedLeading?.();
      if (outcome === "stopped" && (options.releaseOnCancel ?? true)) await release();
      return outcome;
    },
  };
}
