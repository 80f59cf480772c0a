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
 * - Degraded: a degraded outcome is a success for the verdict. A verdict
 *   that turns Healthy on one is degraded at once; a Healthy verdict becomes
 *   degraded after `failureThreshold` results in a row that were not clean
 *   successes, the latest degraded (a degraded result is a partial failure),
 *   and stops being degraded after `successThreshold` clean successes in a
 *   row; the degradation's reason follows the latest degraded result. Only a
 *   Healthy verdict is degraded, so flap damping (which holds Unhealthy)
 *   ends it, and degraded changes are no verdict changes for damping.
 */
import { type Outcome, ok, Reason } from "./reasons.ts";
import type { Degradation, FlapDamping, Verdict } from "./types.ts";

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
  /** A degraded success (only with ok). */
  degraded?: true;
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
  /** Set while the published verdict is Healthy but degraded. */
  readonly degraded?: Degradation;
  /** Results in a row that were not clean successes (degraded or failed). */
  readonly impaired?: number;
  /** Clean successes in a row. */
  readonly clean?: number;
}

export interface VerdictChange {
  from: Verdict;
  to: Verdict;
  reason: string;
  message: string;
  /** Set while the new verdict is Healthy but degraded. */
  degraded?: Degradation;
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

  const cleanSuccess = input.ok && !input.degraded;
  const impaired = cleanSuccess ? 0 : (state.impaired ?? 0) + 1;
  const clean = cleanSuccess ? (state.clean ?? 0) + 1 : 0;
  const degraded = degradation(state, input, verdict, impaired, clean, config);

  const changed = verdict !== state.verdict || damped !== state.damped;
  const degradedChanged = (degraded === undefined) !== (state.degraded === undefined);
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
    ...(degraded ? { degraded } : {}),
    // Only counted while they can matter (a healthy verdict): most states stay as small as before.
    ...(impaired > 0 && verdict === "Healthy" ? { impaired } : {}),
    ...(clean > 0 && degraded ? { clean } : {}),
  };
  if (!changed && !degradedChanged) return { state: next };
  const change: VerdictChange = { from: state.verdict, to: verdict, reason, message };
  if (degraded) change.degraded = degraded;
  return { state: next, change };
}

/** The degradation of the verdict after a step (the rules in the header). */
function degradation(
  state: VerdictState,
  input: VerdictInput,
  verdict: Verdict,
  impaired: number,
  clean: number,
  config: VerdictConfig,
): Degradation | undefined {
  if (verdict !== "Healthy") return undefined;
  const latest = input.degraded ? { reason: input.reason, message: input.message } : undefined;
  if (state.verdict !== "Healthy") return latest;
  if (state.degraded) return clean >= config.successThreshold ? undefined : (latest ?? state.degraded);
  return latest && impaired >= config.failureThreshold ? latest : undefined;
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
  if (mode === "all")
    return withRole(
      firstFailure ?? voided ?? known.find((r) => r.degraded) ?? ok(`${results.length} probes succeeded`),
    );
  const successes = known.filter((r) => r.ok);
  // any: degraded only when every success is (one clean probe is enough).
  if (successes.length > 0)
    return withRole(
      successes.every((r) => r.degraded)
        ? successes[0]!
        : ok(`${successes.length} of ${results.length} probes succeeded`),
    );
  return withRole(voided ?? firstFailure!);
}

export interface OverallVerdict {
  verdict: Verdict;
  reason: string;
  message: string;
  /** Set while the verdict is Healthy and every healthy address is degraded. */
  degraded?: Degradation;
  /** When the verdict (or its being Flapping) last changed. */
  since: number;
}

/**
 * A target's overall verdict from its addresses': Healthy when any address
 * is (degraded when every healthy one is), Unknown when none is but one is
 * still undecided, Unhealthy when all are; with no address (the name does
 * not resolve), the unresolved verdict.
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
  let next: { verdict: Verdict; reason: string; message: string; degraded?: Degradation | undefined };
  if (count === 0) {
    next = { verdict: unresolved.verdict, reason: unresolved.reason, message: unresolved.message };
  } else if (count === 1) {
    const v: VerdictState = addresses[Symbol.iterator]().next().value!.verdict;
    if (
      v.verdict === prev.verdict &&
      v.reason === prev.reason &&
      v.message === prev.message &&
      v.degraded === prev.degraded
    )
      return undefined;
    next = v;
  } else {
    let healthy: { address: string; verdict: VerdictState } | undefined;
    let unknown: typeof healthy;
    let unhealthy: typeof healthy;
    for (const a of addresses) {
      const v = a.verdict.verdict;
      // A clean healthy address wins over a degraded one.
      if (v === "Healthy") {
        if (!healthy || (healthy.verdict.degraded && !a.verdict.degraded)) healthy = a;
      } else if (v === "Unknown") unknown ??= a;
      else unhealthy ??= a;
    }
    const pick = healthy ?? unknown ?? unhealthy!;
    const d = healthy?.verdict.degraded;
    next = {
      verdict: healthy ? "Healthy" : unknown ? "Unknown" : "Unhealthy",
      reason: pick.verdict.reason,
      message: `${pick.address}: ${pick.verdict.message}`,
      ...(d ? { degraded: { reason: d.reason, message: `${pick.address}: ${d.message}` } } : {}),
    };
  }
  const flapping = (r: string) => r === Reason.Flapping;
  const changed =
    prev.verdict !== next.verdict ||
    flapping(prev.reason) !== flapping(next.reason) ||
    (prev.degraded === undefined) !== (next.degraded === undefined);
  const overall: OverallVerdict = {
    verdict: next.verdict,
    reason: next.reason,
    message: next.message,
    since:
      prev.verdict !== next.verdict || flapping(prev.reason) !== flapping(next.reason) ? now : prev.since,
  };
  if (next.degraded) overall.degraded = next.degraded;
  return { overall, changed };
}
