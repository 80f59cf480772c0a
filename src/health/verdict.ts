/**
 * The verdict state machine of one address: consecutive-count thresholds and
 * rate-based flap damping. Pure: (state, outcome, now) -> (state, transition),
 * so it is tested on its own with plain numbers for time.
 *
 * - A new address starts Unknown; it becomes Healthy after `successThreshold`
 *   consecutive successes or Unhealthy after `failureThreshold` consecutive
 *   failures, and moves between the two the same way.
 * - Flap damping: when the threshold verdict changes more than
 *   `maxTransitions` times within `windowMs`, the published verdict is held
 *   Unhealthy (reason Flapping) until the threshold verdict has not changed
 *   for `windowMs`.
 * - A `definitive` outcome (destination denied, `none` probe) meets the
 *   threshold at once: waiting for more of the same would only delay it.
 */
import { type Outcome, ok, Reason } from "./reasons.ts";
import type { FlapDamping, Verdict } from "./types.ts";

export interface VerdictConfig {
  failureThreshold: number;
  successThreshold: number;
  flapDamping?: FlapDamping | undefined;
}

export interface VerdictInput {
  ok: boolean;
  reason: string;
  message: string;
  definitive?: boolean;
  /** The database role a probe of the run learnt (postgres, redis). */
  role?: Outcome["role"];
}

export interface VerdictState {
  /** Published verdict. */
  readonly verdict: Verdict;
  readonly reason: string;
  readonly message: string;
  /** When `verdict` (or damping) last changed. */
  readonly since: number;
  /** Threshold verdict before flap damping. */
  readonly underlying: Verdict;
  readonly successes: number;
  readonly failures: number;
  /** Times of recent underlying changes between Healthy and Unhealthy (newest last). */
  readonly changes: readonly number[];
  readonly damped: boolean;
  /** Latest failure, to explain an Unhealthy verdict once damping ends. */
  readonly lastFailure?: { reason: string; message: string };
}

export interface VerdictChange {
  from: Verdict;
  to: Verdict;
  reason: string;
  message: string;
}

/** Shared by every state without recent changes (most of them): one empty array, not one per state. */
const noChanges: readonly number[] = Object.freeze([]);

export function initialVerdict(
  now: number,
  reason: string = Reason.Pending,
  message = "not probed yet",
): VerdictState {
  return {
    verdict: "Unknown",
    reason,
    message,
    since: now,
    underlying: "Unknown",
    successes: 0,
    failures: 0,
    changes: noChanges,
    damped: false,
  };
}

export function normalizeConfig(c: Partial<VerdictConfig>): VerdictConfig {
  return {
    failureThreshold: Math.max(1, Math.floor(c.failureThreshold ?? 3)),
    successThreshold: Math.max(1, Math.floor(c.successThreshold ?? 1)),
    flapDamping: c.flapDamping,
  };
}

export function step(
  state: VerdictState,
  input: VerdictInput,
  now: number,
  config: VerdictConfig,
): { state: VerdictState; change?: VerdictChange } {
  const successes = input.ok
    ? Math.max(state.successes + 1, input.definitive ? config.successThreshold : 0)
    : 0;
  const failures = input.ok
    ? 0
    : Math.max(state.failures + 1, input.definitive ? config.failureThreshold : 0);

  let underlying = state.underlying;
  if (input.ok && successes >= config.successThreshold) underlying = "Healthy";
  if (!input.ok && failures >= config.failureThreshold) underlying = "Unhealthy";

  const fd = config.flapDamping;
  let changes = state.changes;
  let damped = state.damped;
  if (fd && fd.maxTransitions >= 0 && fd.windowMs > 0) {
    const horizon = now - fd.windowMs;
    if (underlying !== state.underlying && state.underlying !== "Unknown") {
      changes = [...changes.filter((t) => t > horizon), now].slice(-(fd.maxTransitions + 1));
    }
    const last = changes.at(-1);
    if (damped && (last === undefined || now - last >= fd.windowMs)) damped = false;
    if (!damped && changes.filter((t) => t > horizon).length > fd.maxTransitions) damped = true;
    if (!damped && changes.length > 0 && (last === undefined || last <= horizon)) changes = noChanges;
  } else {
    changes = noChanges;
    damped = false;
  }

  const verdict: Verdict = damped ? "Unhealthy" : underlying;
  let reason = state.reason;
  let message = state.message;
  if (damped) {
    reason = Reason.Flapping;
    message = `verdict changed more than ${fd!.maxTransitions} times within ${fd!.windowMs / 1000}s; held unhealthy until stable for ${fd!.windowMs / 1000}s`;
  } else if (verdict === "Unknown" || (verdict === "Healthy") === input.ok) {
    // The latest outcome explains the verdict: keep the reason current.
    reason = input.reason;
    message = input.message;
  } else if (state.damped) {
    // Damping ended but the latest outcome disagrees with the verdict it released to.
    reason =
      verdict === "Healthy" ? Reason.ProbeSucceeded : (state.lastFailure?.reason ?? Reason.NetworkError);
    message =
      verdict === "Healthy"
        ? "stable after flapping"
        : (state.lastFailure?.message ?? "stable after flapping");
  }

  const changed = verdict !== state.verdict || damped !== state.damped;
  const next: VerdictState = {
    verdict,
    reason,
    message,
    since: changed ? now : state.since,
    underlying,
    successes,
    failures,
    changes,
    damped,
    lastFailure: input.ok ? state.lastFailure : { reason: input.reason, message: input.message },
  };
  return changed
    ? { state: next, change: { from: state.verdict, to: verdict, reason, message } }
    : { state: next };
}

// --- one address's probes, and a target's addresses -----------------------

/**
 * No result: the probe said nothing about the target (it never got a slot
 * before its deadline, or its timeout was the operator's own stall). A
 * voided outcome does not step the verdict.
 */
export interface Voided extends Outcome {
  voided: "queue" | "stall";
}
export type ProbeResult = Outcome | Voided;
export const isVoided = (o: ProbeResult | VerdictInput): o is Voided => (o as Voided).voided !== undefined;

/**
 * The results of one address's probes as one input (`combine: all`: every
 * probe must pass; `any`: one is enough); voided results leave it
 * undecided unless the others decide.
 */
export function combineResults(results: ProbeResult[], mode: "all" | "any"): VerdictInput | Voided {
  if (results.length === 1) return results[0]!;
  const voided = results.find(isVoided);
  const known = voided ? results.filter((r) => !isVoided(r)) : results;
  // The role is a fact about the server, whatever the other probes say.
  const role = known.find((r) => r.role !== undefined)?.role;
  const withRole = <T extends VerdictInput>(r: T): T => (role && r.role !== role ? { ...r, role } : r);
  const firstFailure = known.find((r) => !r.ok);
  if (mode === "all") return withRole(firstFailure ?? voided ?? ok(`${results.length} probes succeeded`));
  const successes = known.filter((r) => r.ok).length;
  if (successes > 0) return withRole(ok(`${successes} of ${results.length} probes succeeded`));
  return withRole(voided ?? firstFailure!);
}

export interface OverallVerdict {
  verdict: Verdict;
  reason: string;
  message: string;
  /** When the verdict (or its being Flapping) last changed. */
  since: number;
}

/**
 * A target's overall verdict from its addresses': Healthy when any address
 * is, Unknown when none is but one is still undecided, Unhealthy when all
 * are; with no address (the name does not resolve), the unresolved verdict.
 * Undefined when a single address's verdict is the overall one already
 * (the hot path: nothing to rebuild). `changed`: a transition to report.
 */
export function overallVerdict(
  addresses: Iterable<{ address: string; verdict: VerdictState }>,
  count: number,
  unresolved: VerdictState,
  prev: OverallVerdict,
  now: number,
): { overall: OverallVerdict; changed: boolean } | undefined {
  let next: { verdict: Verdict; reason: string; message: string };
  if (count === 0) {
    next = { verdict: unresolved.verdict, reason: unresolved.reason, message: unresolved.message };
  } else if (count === 1) {
    const v: VerdictState = addresses[Symbol.iterator]().next().value!.verdict;
    if (v.verdict === prev.verdict && v.reason === prev.reason && v.message === prev.message)
      return undefined;
    next = v;
  } else {
    let healthy: { address: string; verdict: VerdictState } | undefined;
    let unknown: typeof healthy;
    let unhealthy: typeof healthy;
    for (const a of addresses) {
      const v = a.verdict.verdict;
      if (v === "Healthy") healthy ??= a;
      else if (v === "Unknown") unknown ??= a;
      else unhealthy ??= a;
    }
    const pick = healthy ?? unknown ?? unhealthy!;
    next = {
      verdict: healthy ? "Healthy" : unknown ? "Unknown" : "Unhealthy",
      reason: pick.verdict.reason,
      message: `${pick.address}: ${pick.verdict.message}`,
    };
  }
  const flapping = (r: string) => r === Reason.Flapping;
  const changed = prev.verdict !== next.verdict || flapping(prev.reason) !== flapping(next.reason);
  return {
    overall: {
      verdict: next.verdict,
      reason: next.reason,
      message: next.message,
      since: changed ? now : prev.since,
    },
    changed,
  };
}
