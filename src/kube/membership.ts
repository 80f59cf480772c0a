/**
 * Group membership through Leases: every replica keeps a Lease of its own
 * (labelled with the group) and sees the others' through an informer. It is
 * leader election's liveness rule applied to everyone at once, so a group of
 * replicas can split work without talking to each other.
 *
 * - Join: write the own Lease (server-side apply) and renew it every
 *   `renewPeriodMs`. Leave (abort): delete it, so the others take over at
 *   once instead of after a lease duration.
 * - A member is alive until `leaseDurationMs` after this replica last saw its
 *   Lease change, measured on this replica's clock (client-go's rule: no
 *   trust in other clocks).
 * - A member is declared dead only while this replica itself renews
 *   successfully: when the API server is unreachable nobody's Lease changes,
 *   and that is no evidence that the others stopped, so the view freezes.
 * - Leases of members dead for another lease duration are deleted (by any
 *   member; UID and resourceVersion preconditions make that safe).
 *
 * Guarantees: `members()` is sorted, contains this replica once it has
 * joined, and is empty before (callers treat "not ready" as "own nothing");
 * `onChange` runs after every change of `members()`.
 */
import type { Clock } from "../util/clock.ts";
import { applyPatchContentType } from "./apply.ts";
import { sleep } from "./backoff.ts";
import { isConflict, isNotFound, type KubeClient } from "./client.ts";
import type { Informer } from "./informer.ts";
import type { Lease } from "./leader.ts";
import { microTime } from "./leader.ts";
import type { Logger } from "./log.ts";
import { resourcePath, resources } from "./object.ts";

/** Label that marks a Lease as a membership Lease of a group. */
export const LABEL_MEMBER_OF = "roster.dev/member-of";

export interface MembershipOptions {
  client: KubeClient;
  /** Leases in `namespace` with `roster.dev/member-of=<group>` (a manager informer). */
  leases: Informer<Lease>;
  namespace: string;
  group: string;
  identity: string;
  fieldManager: string;
  leaseDurationMs: number;
  /** Default: a third of the lease duration. */
  renewPeriodMs?: number;
  clock: Clock;
  logger: Logger;
  onChange?: (members: readonly string[]) => void;
}

export interface Membership {
  /** Live members (identities), sorted; empty until this replica has joined. */
  members(): readonly string[];
  /** Joins and keeps the Lease renewed until `signal` aborts, then leaves. */
  run(signal: AbortSignal): Promise<void>;
}

/** The own Lease's name: a DNS-1123 name derived from the identity (pod names fit as they are). */
export function memberLeaseName(group: string, identity: string): string {
  const clean = identity
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return `${group}-${clean}`.slice(0, 253).replace(/-+$/, "");
}

export function membership(options: MembershipOptions): Membership {
  const { client, leases, namespace, group, identity, clock } = options;
  const log = options.logger.child({ component: "membership", group });
  const leaseMs = options.leaseDurationMs;
  const renewMs = options.renewPeriodMs ?? Math.max(100, Math.floor(leaseMs / 3));
  const name = memberLeaseName(group, identity);
  const path = resourcePath(resources.leases, { namespace, name });
  /** Per Lease name: the renewTime last seen and when this replica saw it change. */
  const seen = new Map<string, { renew: string; at: number }>();
  let joined = false;
  let renewedAt = Number.NEGATIVE_INFINITY;
  let current: readonly string[] = [];

  function alive(now: number): string[] {
    const out = new Set<string>();
    for (const lease of leases.list()) {
      const holder = lease.spec?.holderIdentity;
      const key = lease.metadata.name ?? "";
      if (!holder || lease.metadata.labels?.[LABEL_MEMBER_OF] !== group) continue;
      const renew = lease.spec?.renewTime ?? lease.spec?.acquireTime ?? "";
      const last = seen.get(key);
      if (!last || last.renew !== renew) seen.set(key, { renew, at: now });
      const expires = (seen.get(key)?.at ?? now) + (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
      // Dead only if this replica renewed after the expiry (it was connected).
      if (expires > now || renewedAt < expires) out.add(holder);
    }
    const names = new Set(leases.list().map((l) => l.metadata.name ?? ""));
    for (const key of seen.keys()) if (!names.has(key)) seen.delete(key);
    if (joined) out.add(identity);
    return [...out].sort();
  }

  function refresh(): void {
    const next = joined ? alive(clock.now()) : [];
    if (next.length === current.length && next.every((m, i) => m === current[i])) return;
    log.info({ members: next }, "membership changed");
    current = next;
    options.onChange?.(current);
  }

  async function renew(signal: AbortSignal): Promise<void> {
    const now = clock.now();
    await client.request<Lease>({
      method: "PATCH",
      path,
      contentType: applyPatchContentType,
      query: { fieldManager: options.fieldManager, force: "true" },
      body: {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name, namespace, labels: { [LABEL_MEMBER_OF]: group } },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: Math.ceil(leaseMs / 1000),
          renewTime: microTime(now),
        },
      },
      signal: AbortSignal.any([signal, AbortSignal.timeout(renewMs)]),
    });
    renewedAt = now;
  }

  /** Deletes Leases of members dead for more than another lease duration. */
  async function collect(signal: AbortSignal): Promise<void> {
    const now = clock.now();
    for (const lease of leases.list()) {
      const last = seen.get(lease.metadata.name ?? "");
      const duration = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
      if (!last || lease.spec?.holderIdentity === identity || last.at + 2 * duration > now) continue;
      if (renewedAt < last.at + 2 * duration) continue;
      try {
        await client.request({
          method: "DELETE",
          path: resourcePath(resources.leases, { namespace, name: lease.metadata.name }),
          body: {
            preconditions: { uid: lease.metadata.uid, resourceVersion: lease.metadata.resourceVersion },
          },
          signal,
        });
        log.info(
          { lease: lease.metadata.name, holder: lease.spec?.holderIdentity },
          "removed a dead member's Lease",
        );
      } catch (err) {
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }
    }
  }

  const unsubscribe = leases.addHandler({
    onAdd: () => refresh(),
    onUpdate: () => refresh(),
    onDelete: () => refresh(),
  });

  return {
    members: () => current,
    async run(signal) {
      try {
        while (!signal.aborted) {
          try {
            await renew(signal);
            if (!joined && leases.hasSynced()) {
              joined = true;
              log.info({ lease: name, identity }, "joined");
            }
            await collect(signal);
          } catch (err) {
            if (signal.aborted) break;
            log.warn({ err }, "membership Lease renewal failed; retrying");
          }
          refresh();
          // Liveness of the others is re-evaluated a few times per renewal.
          for (let i = 0; i < 3 && !signal.aborted; i++) {
            await sleep(clock, Math.max(50, Math.floor(renewMs / 3)), signal);
            refresh();
          }
        }
      } finally {
        unsubscribe();
        joined = false;
        refresh();
        try {
          await client.request({
            method: "DELETE",
            path,
            signal: AbortSignal.timeout(5000),
          });
          log.info({ lease: name }, "left");
        } catch (err) {
          if (!isNotFound(err)) log.warn({ err }, "could not delete the membership Lease");
        }
      }
    },
  };
}
