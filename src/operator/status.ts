/**
 * Pure status computation for ServiceInstances (from the spec, the current
 * verdict and what stands in the way of publication) and DiscoveryPolicies
 * (from what publishing their service came to): the status Roster wants.
 * The caller writes it through /status only when it differs (so a status
 * changes on transitions and spec changes, not on every probe).
 */
import {
  addressKind,
  ConditionTypes,
  type DatabaseRole,
  type DiscoveryPolicy,
  type DiscoveryPolicyStatus,
  type EffectiveHealthCheck,
  portSummary,
  type ServiceInstance,
  type ServiceInstanceStatus,
} from "../api/index.ts";
import { Reason } from "../health/index.ts";
import { type Condition, type ConditionInput, metaTime, setCondition } from "../kube/index.ts";
import { checkAddress } from "../publish/addresses.ts";
import { instanceDegraded, instanceHealthy } from "./instance-view.ts";
import type { Blocker } from "./runtime.ts";
import type { InstanceVerdict } from "./verdicts.ts";

export interface InstanceStatusInput {
  instance: ServiceInstance;
  verdict: InstanceVerdict | undefined;
  /** Addresses published for the instance (resolved IPs). */
  addresses: readonly string[];
  /** The database role the instance view decided (status.role); undefined when unknown. */
  role?: DatabaseRole | undefined;
  /** The instance cannot be probed (invalid health check, missing Secret...). */
  blocker?: Blocker;
  /** A Service of the same name that Roster does not manage is in the way. */
  conflict?: Blocker;
  /** The service's ConfigMap is published stale: its readers get no endpoints. */
  configMapStale?: ConfigMapStale;
  /** The health check it is probed with (status.effectiveHealthCheck). */
  healthCheck?: EffectiveHealthCheck;
  now: number;
}

export interface ConfigMapStale {
  /** The ConfigMap's name. */
  configMap: string;
  /** Its stale reason (OverBudget). */
  reason: string;
  /** The service also publishes EndpointSlices. */
  endpointSlices: boolean;
}

const MAX_MESSAGE = 1024;

export function truncate(s: string, max = MAX_MESSAGE): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

export function instanceStatus(input: InstanceStatusInput): ServiceInstanceStatus {
  const { instance, verdict, blocker, conflict, now } = input;
  const previous = instance.status;
  const generation = instance.metadata.generation;
  const healthy = blocker ? false : instanceHealthy(previous, verdict);

  let conditions: Condition[] = (previous?.conditions as Condition[] | undefined) ?? [];
  const set = (c: Omit<ConditionInput, "observedGeneration">) => {
    conditions = setCondition(
      conditions,
      { ...c, message: truncate(c.message), observedGeneration: generation },
      now,
    );
  };

  if (blocker) {
    set({ type: ConditionTypes.Healthy, status: "False", reason: blocker.reason, message: blocker.message });
  } else if (!verdict || verdict.verdict === "Unknown") {
    // No fresh verdict yet (new instance, or this process just started). A
    // recorded Healthy condition that came from a probe verdict (its reason is
    // the last probe's), agrees with `healthy` and describes this generation
    // stays as it is, so an operator restart rewrites no status at all.
    const recorded = conditions.find((c) => c.type === ConditionTypes.Healthy);
    const agrees =
      healthy !== undefined &&
      recorded?.status === (healthy ? "True" : "False") &&
      recorded.reason === previous?.lastProbe?.reason &&
      recorded.observedGeneration === generation;
    if (!agrees)
      set({
        type: ConditionTypes.Healthy,
        status: healthy === undefined ? "Unknown" : healthy ? "True" : "False",
        reason: healthy === undefined ? "AwaitingProbe" : "Restored",
        message:
          healthy === undefined
            ? "no verdict yet: waiting for the probe thresholds"
            : "last recorded verdict; waiting for fresh probes",
      });
  } else {
    set({
      type: ConditionTypes.Healthy,
      status: verdict.verdict === "Healthy" ? "True" : "False",
      reason: verdict.reason || verdict.verdict,
      message: verdict.message || verdict.verdict.toLowerCase(),
    });
  }

  // Degraded: healthy, but published at a reduced weight (publish.degradedWeightPercent).
  const degraded = blocker || healthy !== true ? undefined : instanceDegraded(previous, verdict);
  set(
    degraded
      ? {
          type: ConditionTypes.Degraded,
          status: "True",
          reason: degraded.reason,
          message: degraded.message,
        }
      : { type: ConditionTypes.Degraded, status: "False", reason: "NotDegraded", message: "" },
  );

  if (addressKind(instance.spec.address) === "DNS") {
    set(
      input.addresses.length > 0
        ? {
            type: ConditionTypes.Resolved,
            status: "True",
            reason: "Resolved",
            message: `${instance.spec.address} resolved to ${input.addresses.join(", ")}`,
          }
        : {
            type: ConditionTypes.Resolved,
            status: "False",
            reason: "NotResolved",
            message: `${instance.spec.address} has no address yet`,
          },
    );
  }

  if (conflict) {
    set({
      type: ConditionTypes.Conflict,
      status: "True",
      reason: conflict.reason,
      message: conflict.message,
    });
  } else if (conditions.some((c) => c.type === ConditionTypes.Conflict)) {
    set({ type: ConditionTypes.Conflict, status: "False", reason: "NoConflict", message: "" });
  }

  const ready: Omit<ConditionInput, "observedGeneration"> = blocker
    ? { type: ConditionTypes.Ready, status: "False", reason: blocker.reason, message: blocker.message }
    : conflict
      ? { type: ConditionTypes.Ready, status: "False", reason: conflict.reason, message: conflict.message }
      : instance.spec.drain
        ? {
            type: ConditionTypes.Ready,
            status: "False",
            reason: "Draining",
            message: "spec.drain is set: published as serving but not ready (terminating)",
          }
        : healthy === true
          ? readyCondition(input.addresses, input.configMapStale)
          : healthy === false
            ? {
                type: ConditionTypes.Ready,
                status: "False",
                reason: "Unhealthy",
                message: "not published while unhealthy (unless the service is in panic)",
              }
            : {
                type: ConditionTypes.Ready,
                status: "Unknown",
                reason: "AwaitingProbe",
                message: "no verdict yet",
              };
  set(ready);

  const status: ServiceInstanceStatus = {
    conditions: conditions as ServiceInstanceStatus["conditions"],
    portSummary: portSummary(instance.spec.ports),
    addresses: input.addresses.slice(0, 16),
  };
  if (generation !== undefined) status.observedGeneration = generation;
  if (input.role && !blocker) status.role = input.role;
  if (input.healthCheck) status.effectiveHealthCheck = input.healthCheck;
  if (healthy !== undefined) {
    status.healthy = healthy;
    // A change the fresh verdict decided happened at the verdict's time: the
    // publisher's slow start reads the same time from the verdict until this
    // status is written, then from here (see healthySince()).
    const changedAt =
      !blocker && verdict?.verdict === (healthy ? "Healthy" : "Unhealthy") ? verdict.since : now;
    status.lastTransitionTime =
      previous?.healthy === healthy && previous.lastTransitionTime
        ? previous.lastTransitionTime
        : metaTime(changedAt);
  }
  const decided = verdict && verdict.verdict !== "Unknown" ? verdict : undefined;
  if (decided) {
    const probe = {
      time: metaTime(decided.since),
      result: decided.verdict === "Healthy" ? ("Success" as const) : ("Failure" as const),
      reason: /^[A-Za-z][A-Za-z0-9]*$/.test(decided.reason) ? decided.reason : undefined,
      message: decided.message ? truncate(decided.message) : undefined,
    };
    // The same outcome as recorded (typically the first verdict after an
    // operator restart) changes nothing: keep the recorded time.
    const last = previous?.lastProbe;
    status.lastProbe =
      last && last.result === probe.result && last.reason === probe.reason && last.message === probe.message
        ? last
        : probe;
  } else if (previous?.lastProbe) {
    status.lastProbe = previous.lastProbe;
  }
  return status;
}

/**
 * The Ready condition of a healthy, undrained instance. Addresses the API
 * server refuses in EndpointSlices (loopback, link-local, unspecified) are
 * published in the ConfigMap only; the condition says so, since cluster DNS
 * and kube-proxy will not see them. A stale ConfigMap (over budget) carries
 * no endpoints: the instance is ready in the EndpointSlices at most (Ready
 * True only if it is in them), and the condition names the ConfigMap.
 */
function readyCondition(
  addresses: readonly string[],
  stale?: ConfigMapStale,
): Omit<ConditionInput, "observedGeneration"> {
  const refused = addresses.flatMap((a) => {
    const c = checkAddress(a);
    return c.ok && !c.sliceable ? [`${c.address} (${c.reason})`] : [];
  });
  if (stale) {
    const why = `ConfigMap ${stale.configMap} is published stale (${stale.reason}): its readers get no endpoints`;
    const inSlices = stale.endpointSlices && refused.length < addresses.length;
    return inSlices
      ? {
          type: ConditionTypes.Ready,
          status: "True",
          reason: "ConfigMapStale",
          message: `published as ready in the EndpointSlices only; ${why}`,
        }
      : {
          type: ConditionTypes.Ready,
          status: "False",
          reason: "ConfigMapStale",
          message: `not published: ${why}${stale.endpointSlices ? "" : ", and publish.endpointSlices is off"}`,
        };
  }
  if (refused.length === 0) {
    return { type: ConditionTypes.Ready, status: "True", reason: "Healthy", message: "published as ready" };
  }
  const all = refused.length === addresses.length;
  return {
    type: ConditionTypes.Ready,
    status: "True",
    reason: "NotInEndpointSlices",
    message: `published as ready${all ? " in the ConfigMap only" : ""}: ${refused.join(", ")} cannot be in an EndpointSlice`,
  };
}

export interface InstanceEvent {
  type: "Normal" | "Warning";
  reason: string;
  note: string;
}

/**
 * The Events a status write records, from the status it replaced and the one
 * written: the first verdict (so `kubectl describe si` of an instance that
 * never became healthy says why), every change of `healthy`, and the start
 * and end of flap damping (which can hold an instance without changing
 * `healthy`), and the start and end of the Degraded state. Repeats become a series of one Event (src/kube/events.ts).
 */
export function instanceEvents(
  previous: ServiceInstanceStatus | undefined,
  next: ServiceInstanceStatus,
): InstanceEvent[] {
  const events: InstanceEvent[] = [];
  const health = (s: ServiceInstanceStatus | undefined) =>
    s?.conditions?.find((c) => c.type === ConditionTypes.Healthy);
  const before = health(previous);
  const after = health(next);
  const detail = after ? `${after.reason}: ${after.message}` : "";
  if (next.healthy !== undefined && previous?.healthy !== next.healthy) {
    const first = previous?.healthy === undefined;
    events.push({
      type: next.healthy ? "Normal" : "Warning",
      reason: next.healthy ? "BecameHealthy" : "BecameUnhealthy",
      note: first ? `first verdict: ${detail}` : detail,
    });
  }
  const flapping = (c: typeof after) => c?.reason === Reason.Flapping;
  if (flapping(after) && !flapping(before)) {
    events.push({ type: "Warning", reason: "FlapDamping", note: after!.message });
  } else if (flapping(before) && after && !flapping(after)) {
    events.push({
      type: "Normal",
      reason: "FlapDampingEnded",
      note: `stable again; ${next.healthy ? "healthy" : "unhealthy"}: ${detail}`,
    });
  }
  // Degraded: entered (or its cause changed) and left while healthy. Leaving
  // it by becoming unhealthy is BecameUnhealthy's Event, not a recovery.
  const degradation = (s: ServiceInstanceStatus | undefined) =>
    s?.conditions?.find((c) => c.type === ConditionTypes.Degraded && c.status === "True");
  const was = degradation(previous);
  const is = degradation(next);
  if (is && is.reason !== was?.reason) {
    events.push({ type: "Warning", reason: "Degraded", note: `${is.reason}: ${is.message}` });
  } else if (was && !is && next.healthy === true) {
    events.push({
      type: "Normal",
      reason: "DegradedEnded",
      note: `published at full weight again (was ${was.reason}: ${was.message})`,
    });
  }
  return events;
}

/** What publishing a service came to, as its policies' status reports it. */
export interface PublicationOutcome {
  /** What was published (undefined: nothing was computed). */
  desired?: { panic: boolean; counts: { total: number; ready: number; healthy: number; draining: number } };
  /** The ConfigMap revision published. */
  revision?: number;
  /** Why nothing (or not everything) was published: an object Roster does not manage is in the way. */
  conflict?: string;
  /** The Conflict condition's reason (default UnmanagedObject). */
  conflictReason?: string;
  /** Publishing failed with this message (the reconcile is retried). */
  failed?: string;
  /** The ConfigMap was published stale (over budget), with this message; the rest is published. */
  stale?: string;
  /** publish.role is set and these instances' checks have no postgres or redis probe: never published. */
  noRoleProbe?: { role: string; names: readonly string[]; total: number };
}

export interface PolicyStatusInput {
  policy: Pick<DiscoveryPolicy, "metadata" | "spec" | "status">;
  /** The policy that governs the service, when it is another one (a duplicate). */
  winner?: string;
  /** The governing policy's spec errors (it publishes with the defaults meanwhile). */
  invalid?: readonly { path: string; message: string }[];
  outcome: PublicationOutcome;
  now: number;
}

export interface PolicyEvent {
  type: "Normal" | "Warning";
  reason: string;
  note: string;
}

/**
 * A DiscoveryPolicy's status, and the Event that goes with it (panic
 * entered or left): a duplicate is not Ready (Conflict DuplicatePolicy), an
 * invalid spec says which fields, a conflict or a failure says why nothing
 * was published (a failure keeps the counts last published), else Ready
 * with the published counts and Panic while below the threshold.
 */
export function policyStatus(input: PolicyStatusInput): {
  status: DiscoveryPolicyStatus;
  event?: PolicyEvent;
} {
  const { policy, winner, invalid, outcome, now } = input;
  const gen = policy.metadata.generation;
  let conditions = (policy.status?.conditions ?? []) as Condition[];
  const set = (type: string, status: "True" | "False", reason: string, message: string) => {
    conditions = setCondition(
      conditions,
      { type, status, reason, message: truncate(message), observedGeneration: gen },
      now,
    );
  };
  const status: DiscoveryPolicyStatus = {};
  let event: PolicyEvent | undefined;
  if (winner !== undefined) {
    set(
      ConditionTypes.Conflict,
      "True",
      "DuplicatePolicy",
      `DiscoveryPolicy ${winner} already governs service ${policy.spec.service}`,
    );
    set(
      ConditionTypes.Ready,
      "False",
      "DuplicatePolicy",
      `ignored: DiscoveryPolicy ${winner} governs this service`,
    );
  } else if (invalid) {
    set(
      ConditionTypes.Ready,
      "False",
      "InvalidSpec",
      invalid.map((e) => `${e.path}: ${e.message}`).join("; "),
    );
  } else if (outcome.conflict) {
    set(ConditionTypes.Conflict, "True", outcome.conflictReason ?? "UnmanagedObject", outcome.conflict);
    set(ConditionTypes.Ready, "False", "Conflict", outcome.conflict);
  } else if (outcome.failed) {
    set(ConditionTypes.Ready, "False", "PublishFailed", `publishing failed, retrying: ${outcome.failed}`);
    const { panic, totalInstances, healthyInstances, drainingInstances, publishedRevision } =
      policy.status ?? {};
    Object.assign(status, { panic, totalInstances, healthyInstances, drainingInstances, publishedRevision });
  } else {
    const d = outcome.desired;
    if (conditions.some((c) => c.type === ConditionTypes.Conflict))
      set(ConditionTypes.Conflict, "False", "NoConflict", "");
    const roleless = outcome.noRoleProbe;
    const rolelessMessage = roleless
      ? `publish.role is ${roleless.role}, but ${roleless.names.length} of ${roleless.total} instances have no postgres or redis probe, so their role is never known and they are never published: ${listed(roleless.names)}`
      : "";
    if (roleless) set(ROLE_UNKNOWN, "True", "NoRoleProbe", rolelessMessage);
    else if (conditions.some((c) => c.type === ROLE_UNKNOWN))
      set(ROLE_UNKNOWN, "False", "RoleProbes", "every instance has a postgres or redis probe");
    if (outcome.stale) set(ConditionTypes.Ready, "False", "PublishFailed", outcome.stale);
    else if (roleless && roleless.names.length === roleless.total)
      set(ConditionTypes.Ready, "False", "NoRoleProbe", rolelessMessage);
    else
      set(
        ConditionTypes.Ready,
        "True",
        "Published",
        `${d?.counts.ready ?? 0} of ${d?.counts.total ?? 0} instances published as ready`,
      );
    const panic = d?.panic ?? false;
    if (panic || conditions.some((c) => c.type === PANIC)) {
      set(
        PANIC,
        panic ? "True" : "False",
        panic ? "BelowPanicThreshold" : "AboveThreshold",
        panic
          ? `${d?.counts.healthy} of ${d?.counts.total} healthy is below publish.panicThreshold: every non-drained instance is published`
          : "enough instances are healthy",
      );
    }
    if (panic !== (policy.status?.panic ?? false)) {
      event = panic
        ? {
            type: "Warning",
            reason: "PanicEntered",
            note: "too few healthy instances: publishing all non-drained instances",
          }
        : { type: "Normal", reason: "PanicLeft", note: "enough instances are healthy again" };
    }
    status.panic = panic;
    status.totalInstances = d?.counts.total ?? 0;
    status.healthyInstances = d?.counts.healthy ?? 0;
    status.drainingInstances = d?.counts.draining ?? 0;
    if (outcome.revision !== undefined) status.publishedRevision = outcome.revision;
  }
  status.conditions = conditions as DiscoveryPolicyStatus["conditions"];
  if (gen !== undefined) status.observedGeneration = gen;
  return { status, event };
}

const PANIC = "Panic";
/** DiscoveryPolicy: publish.role is set and some instances can never have a role (no database probe). */
export const ROLE_UNKNOWN = "RoleUnknown";

/** Up to five names, then how many more. */
function listed(names: readonly string[]): string {
  const shown = names.slice(0, 5).join(", ");
  return names.length > 5 ? `${shown} and ${names.length - 5} more` : shown;
}
