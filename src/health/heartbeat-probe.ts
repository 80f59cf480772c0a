/**
 * Heartbeat probe (a TTL check): the instance renews a coordination.k8s.io/v1
 * Lease; it is healthy while renewTime + leaseDuration is in the future. No
 * network probe: the engine reads the Lease through the injected reader
 * (backed by an informer cache in the operator).
 */
import { fail, type Outcome, ok, Reason } from "./reasons.ts";
import type { HeartbeatProbeSpec, LeaseReader } from "./types.ts";

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

export async function heartbeatProbe(
  spec: HeartbeatProbeSpec,
  read: LeaseReader,
  now: () => number,
): Promise<Outcome> {
  const { namespace, name } = spec.lease;
  let lease: Awaited<ReturnType<LeaseReader>>;
  try {
    lease = await read(namespace, name);
  } catch (err) {
    return fail(
      Reason.LeaseReadError,
      `reading Lease ${namespace}/${name}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (!lease) return fail(Reason.LeaseNotFound, `Lease ${namespace}/${name} not found`);
  const t = now();
  const expires = lease.renewTimeMs + lease.leaseDurationMs;
  const age = seconds(t - lease.renewTimeMs);
  if (t < expires) return ok(`Lease ${namespace}/${name} renewed ${age} ago`);
  return fail(
    Reason.LeaseExpired,
    `Lease ${namespace}/${name} expired ${seconds(t - expires)} ago (renewed ${age} ago, duration ${seconds(lease.leaseDurationMs)})`,
  );
}
