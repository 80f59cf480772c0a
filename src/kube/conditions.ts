/**
 * Status conditions, following the Kubernetes API conventions (and
 * apimachinery's meta.SetStatusCondition).
 *
 * Guarantees:
 * - Conditions are a list keyed by `type`; `setCondition` replaces the entry
 *   of that type or appends one, and never reorders the others.
 * - `lastTransitionTime` changes only when `status` flips (or the condition
 *   is new); a new reason, message or observedGeneration alone keeps it.
 * - Pure: inputs are never mutated; when nothing changes, the very same
 *   array is returned (so `result === input` means "no write needed").
 * - Times are RFC 3339 with second precision, as metav1.Time serializes.
 */

export type ConditionStatus = "True" | "False" | "Unknown";

export interface Condition {
  type: string;
  status: ConditionStatus;
  /** CamelCase, machine-readable. */
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type ConditionInput = Omit<Condition, "lastTransitionTime"> & { lastTransitionTime?: string };

/** metav1.Time: RFC 3339, whole seconds. */
export function metaTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

/** Sets a condition; `nowMs` stamps lastTransitionTime when the status flips. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: ConditionInput,
  nowMs: number,
): Condition[] {
  const list = conditions ?? [];
  const i = list.findIndex((c) => c.type === next.type);
  if (i < 0) {
    const added: Condition = { ...next, lastTransitionTime: next.lastTransitionTime ?? metaTime(nowMs) };
    if (added.observedGeneration === undefined) delete added.observedGeneration;
    return [...list, added];
  }
  const cur = list[i]!;
  const flipped = cur.status !== next.status;
  const merged: Condition = {
    type: cur.type,
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime: flipped ? (next.lastTransitionTime ?? metaTime(nowMs)) : cur.lastTransitionTime,
  };
  const gen = next.observedGeneration ?? cur.observedGeneration;
  if (gen !== undefined) merged.observedGeneration = gen;
  if (
    !flipped &&
    cur.reason === merged.reason &&
    cur.message === merged.message &&
    cur.observedGeneration === merged.observedGeneration
  ) {
    return list as Condition[];
  }
  const out = list.slice();
  out[i] = merged;
  return out;
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  const list = conditions ?? [];
  return list.some((c) => c.type === type) ? list.filter((c) => c.type !== type) : (list as Condition[]);
}
