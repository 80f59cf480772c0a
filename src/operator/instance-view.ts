/**
 * The instance view: the only place that decides what an instance is, as
 * published: its verdict and its addresses. The status writer records it,
 * the publisher publishes it, and with sharding a replica publishes what the
 * owning replica recorded (the status is then the view).
 *
 * - An instance this replica probes: its runtime (runtime.ts) says whether
 *   it is blocked; its verdict is the fresh one, else the one recorded in
 *   its status (right after a restart); its addresses are those the engine
 *   resolved (minus what may not be published), or with a host override
 *   the instance address's own resolution at the overall verdict.
 * - An instance another replica probes: the status that replica wrote.
 * - Its database role (status.role, publish.role): the one role every
 *   published address's server reported to its last counted probe (with a
 *   host override, every probed address); unknown when one of them reported
 *   none (not probed yet, failing) or they disagree. Fresh only: a role
 *   recorded before a restart is not trusted for publishing by role.
 *   Whether its check can learn a role at all (a postgres or redis probe):
 *   without one, publish.role leaves it out for good, which the policy's
 *   status says (RoleUnknown, see publish-plan.ts).
 */
import {
  ConditionTypes,
  type DatabaseRole,
  type EffectiveHealthCheck,
  type ServiceInstanceStatus,
  type Verdict,
} from "../api/index.ts";
import type { Degradation } from "../health/index.ts";
import type { InstanceInput } from "../publish/index.ts";
import type { InstanceObject, OperatorContext } from "./context.ts";
import { blockerReasons, type InstanceRuntime, type RuntimeStore } from "./runtime.ts";
import type { AddressVerdict, InstanceVerdict } from "./verdicts.ts";

/** An owned instance as the status writer records it. */
export interface ProbedInstance {
  runtime: InstanceRuntime;
  /** undefined while blocked or not probed yet. */
  verdict: InstanceVerdict | undefined;
  /** The addresses to publish (resolved IPs). */
  addresses: string[];
  /** The database role; absent when unknown. */
  role?: DatabaseRole;
}

/** An instance as the publisher publishes it. */
export interface PublishedInstance {
  /** Not published at all (invalid, missing Secret...), or not looked at yet. */
  blocked: boolean;
  /** Probed at least once (or blocked): the start-up hold need not wait for it. */
  settled: boolean;
  verdict: InstanceInput["verdict"];
  /** Healthy but degraded: published at the policy's degradedWeightPercent of its weight. */
  degraded: boolean;
  addresses: string[];
  /** While the verdict is Healthy: when the instance turned healthy (ms; see healthySince()). */
  healthySince?: number;
  /** The database role; absent when unknown. */
  role?: DatabaseRole;
  /** Its check has a postgres or redis probe (learns a role); undefined while its check is not known. */
  roleProbe?: boolean;
}

export interface InstanceView {
  /** An owned instance with its runtime, or undefined before the probe-target controller saw it. */
  probed(key: string): ProbedInstance | undefined;
  published(si: InstanceObject): PublishedInstance;
  /** The publisher's input: the instances that are not blocked. */
  inputs(instances: readonly InstanceObject[]): InstanceInput[];
  /** When this process started probing. */
  probingSince(): number | undefined;
}

/**
 * `healthy` is the last known verdict: while the engine has none yet (Unknown,
 * e.g. right after an operator restart), the previous value stands.
 */
export function instanceHealthy(
  previous: ServiceInstanceStatus | undefined,
  verdict: InstanceVerdict | undefined,
): boolean | undefined {
  if (verdict?.verdict === "Healthy") return true;
  if (verdict?.verdict === "Unhealthy") return false;
  return previous?.healthy;
}

/**
 * When a healthy instance turned healthy (ms), for slow start: the time its
 * status recorded (status.lastTransitionTime while status.healthy is true),
 * which survives operator restarts (the engine's own `since` starts again
 * with the process), else the fresh verdict's `since` (it just turned
 * healthy and the status writer has not recorded it yet; it records the
 * same second, see instanceStatus()). Undefined when neither says healthy.
 */
export function healthySince(
  status: ServiceInstanceStatus | undefined,
  verdict: InstanceVerdict | undefined,
): number | undefined {
  if (status?.healthy === true && status.lastTransitionTime) {
    const recorded = Date.parse(status.lastTransitionTime);
    if (Number.isFinite(recorded)) return recorded;
  }
  // To the second, as the status records it (metaTime) and readers measure
  // it: the instance as published does not change when its status is written.
  return verdict?.verdict === "Healthy" ? Math.floor(verdict.since / 1000) * 1000 : undefined;
}

/** Probe types that report the server's role (status.role). */
const ROLE_PROBES = new Set(["postgres", "redis"]);

/**
 * Whether a check, as its status shows it, has a probe that learns the
 * database role; undefined when the check is not known. Each line is
 * `[name: ]type ...` (a probe name is a DNS label: no space, no colon).
 */
export function learnsRole(check: EffectiveHealthCheck | undefined): boolean | undefined {
  if (!check) return undefined;
  return check.probes.some((line) => {
    const [first, second] = line.split(" ");
    return ROLE_PROBES.has((first?.endsWith(":") ? second : first) ?? "");
  });
}

/** The one role all these addresses' servers reported; undefined when one reported none or they differ. */
export function instanceRole(addresses: readonly AddressVerdict[]): DatabaseRole | undefined {
  const role = addresses[0]?.role;
  return role && addresses.every((a) => a.role === role) ? role : undefined;
}

/**
 * The degradation of a healthy instance, by the same rule: the fresh
 * verdict's, else (no verdict yet) the recorded Degraded condition's.
 */
export function instanceDegraded(
  previous: ServiceInstanceStatus | undefined,
  verdict: InstanceVerdict | undefined,
): Degradation | undefined {
  if (verdict?.verdict === "Healthy") return verdict.degraded;
  if (verdict?.verdict === "Unhealthy" || previous?.healthy !== true) return undefined;
  return recordedDegradation(previous);
}

function recordedDegradation(status: ServiceInstanceStatus | undefined): Degradation | undefined {
  const c = status?.conditions?.find((c) => c.type === ConditionTypes.Degraded);
  return c?.status === "True" ? { reason: c.reason, message: c.message } : undefined;
}

export function instanceView(ctx: OperatorContext, runtimes: RuntimeStore): InstanceView {
  /** The addresses to publish for an owned instance, each with its verdict. */
  function addresses(
    key: string,
    rt: InstanceRuntime,
    verdict: InstanceVerdict | undefined,
  ): AddressVerdict[] {
    if (rt.blocker) return [];
    if (!rt.hostOverride) {
      // A name the engine resolved: drop what may not be published (pod/Service
      // networks). A denied destination stays: the engine never probes it and
      // reports it DestinationDenied, so it is listed but never published ready.
      const ns = key.slice(0, key.indexOf("/"));
      const policy = ctx.publication();
      return (verdict?.addresses ?? []).filter((a) => {
        const d = policy.check(ns, a.address);
        return d.allowed || d.rule === "destination";
      });
    }
    const overall = verdict?.verdict ?? "Unknown";
    // The published addresses are not the probed ones: the role is the probed servers'.
    const role = instanceRole(verdict?.addresses ?? []);
    return (rt.resolved ?? []).map((address) =>
      role ? { address, verdict: overall, role } : { address, verdict: overall },
    );
  }

  /** The addresses listed and their role (see the header): a healthy name that resolves to several IPs lists the IPs that pass. */
  function listed(all: readonly AddressVerdict[], healthy: boolean) {
    const passing = all.filter((a) => a.verdict === "Healthy");
    const shown = healthy && passing.length > 0 ? passing : all;
    return { addresses: shown.map((a) => a.address), role: instanceRole(shown) };
  }

  function published(si: InstanceObject): PublishedInstance {
    const key = `${si.metadata.namespace}/${si.metadata.name}`;
    if (!ctx.shards.owns(key)) {
      const recorded = asVerdict(si.status?.healthy);
      const ready = si.status?.conditions?.find((c) => c.type === ConditionTypes.Ready);
      const blocked = ready?.status === "False" && blockerReasons.has(ready.reason);
      const addresses = si.status?.addresses ?? [];
      const since = recorded === "Healthy" ? healthySince(si.status, undefined) : undefined;
      const role = blocked ? undefined : si.status?.role;
      const degraded = recorded === "Healthy" && recordedDegradation(si.status) !== undefined;
      return {
        blocked,
        settled: blocked || recorded !== "Unknown",
        verdict: recorded,
        degraded,
        addresses,
        ...withRole(role),
        ...withRoleProbe(learnsRole(si.status?.effectiveHealthCheck)),
        ...(since !== undefined ? { healthySince: since } : {}),
      };
    }
    const rt = runtimes.get(key);
    if (!rt || rt.blocker)
      return { blocked: true, settled: rt !== undefined, verdict: "Unknown", degraded: false, addresses: [] };
    const verdict = ctx.verdicts.get(key);
    // The status writer's rule: the fresh verdict, else the recorded one.
    const effective = asVerdict(instanceHealthy(si.status, verdict));
    const { addresses: list, role } = listed(addresses(key, rt, verdict), effective === "Healthy");
    const degraded = effective === "Healthy" && instanceDegraded(si.status, verdict) !== undefined;
    const since = effective === "Healthy" ? healthySince(si.status, verdict) : undefined;
    return {
      blocked: false,
      settled: verdict?.probed === true,
      verdict: effective,
      degraded,
      addresses: list,
      ...withRole(role),
      ...withRoleProbe(learnsRole(rt.healthCheck)),
      ...(since !== undefined ? { healthySince: since } : {}),
    };
  }

  return {
    probed(key) {
      const runtime = runtimes.get(key);
      if (!runtime) return undefined;
      const verdict = runtime.blocker ? undefined : ctx.verdicts.get(key);
      const all = addresses(key, runtime, verdict);
      // The status lists every address; the role is that of the addresses published.
      const { role } = listed(all, verdict?.verdict === "Healthy");
      return { runtime, verdict, addresses: all.map((a) => a.address), ...withRole(role) };
    },
    published,
    inputs(instances) {
      const out: InstanceInput[] = [];
      for (const si of instances) {
        const v = published(si);
        if (v.blocked) continue;
        out.push({
          name: si.metadata.name!,
          uid: si.metadata.uid,
          addresses: v.addresses,
          ports: si.spec.ports,
          weight: si.spec.weight,
          zone: si.spec.zone,
          drain: si.spec.drain,
          verdict: v.verdict,
          ...(v.degraded ? { degraded: true } : {}),
          tags: si.spec.tags,
          metadata: si.spec.metadata,
          ...withRole(v.role),
          ...(v.roleProbe === false ? { noRoleProbe: true } : {}),
          ...(v.healthySince !== undefined ? { healthySince: v.healthySince } : {}),
        });
      }
      return out;
    },
    probingSince: () => runtimes.probingSince(),
  };
}

/** `role` only when known: an unknown role is an absent field, in status and published documents alike. */
function withRole(role: DatabaseRole | undefined): { role?: DatabaseRole } {
  return role ? { role } : {};
}

function withRoleProbe(roleProbe: boolean | undefined): { roleProbe?: boolean } {
  return roleProbe === undefined ? {} : { roleProbe };
}

/** A status's `healthy` (absent: no verdict yet) as the one Verdict (src/api/common.ts). */
function asVerdict(healthy: boolean | undefined): Verdict {
  return healthy === true ? "Healthy" : healthy === false ? "Unhealthy" : "Unknown";
}
