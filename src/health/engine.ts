/**
 * The probe engine: given targets `{ id, host, check }`, it resolves their
 * addresses, probes each address on a stable, spread-out schedule under
 * bounded concurrency and the destination policy, runs each address's
 * verdict state machine, and reports only what consumers need: verdict
 * transitions (per address and per target), summaries on demand, and one
 * observation per finished probe for metrics.
 *
 * It knows nothing of Kubernetes: time, DNS and Lease reads are injected.
 */
import { isIP } from "node:net";
import { type Clock, systemClock, type Timer } from "../util/clock.ts";
import { deepEqual } from "../util/equal.ts";
import { type DnsCache, dnsCache, systemResolver } from "./dns.ts";
import { grpcPool, grpcProbe } from "./grpc-probe.ts";
import { heartbeatProbe } from "./heartbeat-probe.ts";
import { httpProbe } from "./http-probe.ts";
import { connectionPool } from "./http1.ts";
import { type Limiter, limiter, type Ticket } from "./limiter.ts";
import { type DestinationPolicy, type DestinationPolicyConfig, destinationPolicy } from "./policy.ts";
import { postgresProbe } from "./postgres-probe.ts";
import { fail, type Outcome, ok, ProbeTimeout, Reason, withLatency } from "./reasons.ts";
import { redisProbe } from "./redis-probe.ts";
import { jitterFor, nextRun, nextSlot, onTick, phaseOf, slotAtOrAfter, tickFor } from "./schedule.ts";
import { ProbeSignal } from "./signal.ts";
import { type StallMonitor, stallMonitor } from "./stall.ts";
import { tcpProbe } from "./tcp-probe.ts";
import { timerHeap } from "./timer-heap.ts";
import type {
  AddressSummary,
  CheckSpec,
  DatabaseRole,
  HeartbeatProbeSpec,
  LeaseReader,
  ProbeObservation,
  ProbeSpec,
  ProbeType,
  Resolver,
  Target,
  TargetSummary,
  Transition,
} from "./types.ts";
import { udpProbe } from "./udp-probe.ts";
import {
  combineResults,
  initialVerdict,
  isVoided,
  normalizeConfig,
  type OverallVerdict,
  overallVerdict,
  type ProbeResult,
  step,
  type VerdictConfig,
  type VerdictInput,
  type VerdictState,
  type Voided,
} from "./verdict.ts";

export interface ProbeEngineOptions {
  clock?: Clock;
  /** DNS resolution of target hosts (default: getaddrinfo through node:dns). */
  resolver?: Resolver;
  /** Lease reads for heartbeat probes; without one, heartbeat probes fail with LeaseReadError. */
  leaseReader?: LeaseReader;
  policy?: DestinationPolicyConfig;
  /**
   * Probes in flight at once, all targets together (default 512), shared
   * fairly between tenants (namespaces) and their targets: see limiter.ts.
   */
  maxConcurrent?: number;
  /** Probes in flight at once to one destination IP (default 16). */
  maxPerHost?: number;
  /** Slots a namespace beyond its fair share may not take (default maxConcurrent / 8). */
  reserve?: number;
  /**
   * Addresses probed per DNS name (default 16): a name resolving to more is
   * probed (and published) at its first `maxAddressesPerName` addresses in
   * sorted order, so one name cannot multiply its probes without bound.
   */
  maxAddressesPerName?: number;
  /**
   * Measures event-loop stalls; a probe timeout during which the loop was
   * blocked for a quarter of the timeout or more is voided (default: a
   * monitor on `clock`).
   */
  stalls?: StallMonitor;
  /** How long a DNS answer is used (default 30 s). */
  dnsRefreshMs?: number;
  /** How long a DNS failure is remembered (default 5 s). */
  dnsNegativeTtlMs?: number;
  /**
   * Reuse HTTP connections between probes of the same destination (default
   * true): several times cheaper per probe. A connection is reused for at most
   * `httpConnectionMaxAgeMs`, so every destination still gets a new connection
   * regularly and a server that stops accepting connections is noticed. With
   * false, every probe opens a connection (as kubelet and Consul do).
   */
  httpKeepAlive?: boolean;
  /** Default 60 s. */
  httpConnectionMaxAgeMs?: number;
  /**
   * Runs due within the same tick start together at its end: fewer timer
   * wake-ups, for at most a tick of lateness. Rechecks use `tickMs` (default
   * 10 ms); regular runs a tick that widens while runs are sparse, up to 1 %
   * of their interval and at most `maxTickMs` (default 100 ms): see
   * `tickFor` in schedule.ts. A run never starts before its time.
   */
  tickMs?: number;
  maxTickMs?: number;
  /** Randomness for per-run jitter (tests inject a fixed one). */
  random?: () => number;
  onTransition?: (t: Transition) => void;
  /**
   * One call per probe, and at least one per finished run of a target: runs
   * decided without probing (registration-only targets, refused addresses,
   * unresolvable names) report observations marked `local`.
   */
  onProbe?: (o: ProbeObservation) => void;
  /**
   * An address's database role changed (a postgres or redis probe reported
   * another role, or none: failed, voided past the stall allowance). Called
   * after the run's verdict step, so `summary()` shows it.
   */
  onRole?: (id: string, address: string, role: DatabaseRole | undefined) => void;
  /** Errors thrown by the callbacks above (default: console.error). */
  onError?: (err: unknown) => void;
}

export interface EngineStats {
  targets: number;
  addresses: number;
  inFlight: number;
  queued: number;
  /** Runs started (one run probes every address of a target). */
  runs: number;
  probes: number;
  /** Slots skipped because the previous run of the same target was still going. */
  skippedSlots: number;
  /** Runs at recheckInterval, confirming a result that differs from the verdict. */
  rechecks: number;
  /** Probes that got no concurrency slot within their timeout (never connected, no result). */
  expired: number;
  /** Probe timeouts voided because the event loop was blocked during the probe. */
  voidedByStalls: number;
  dnsNames: number;
  grpcChannels: number;
}

export interface ProbeEngine {
  /** Adds a target, or changes one with the same id (effective at once; others undisturbed). */
  set(target: Target): void;
  /** Removes a target and cancels its in-flight probes. No transition is reported. */
  remove(id: string): void;
  /** Replaces the destination policy; takes effect at each target's next run. Throws on invalid CIDRs. */
  setPolicy(config: DestinationPolicyConfig): void;
  summary(id: string): TargetSummary | undefined;
  summaries(): IterableIterator<TargetSummary>;
  has(id: string): boolean;
  stats(): EngineStats;
  /** Stops everything: cancels probes, closes connections. */
  close(): void;
}

interface AddressState {
  address: string;
  verdict: VerdictState;
  /** Set when the destination policy refuses the address. */
  denied?: string;
  lastProbeAt?: number;
  /** The role the last counted run learnt (postgres, redis); undefined when it learnt none. */
  role?: DatabaseRole;
  /** Failed runs in a row excused because the event loop stalled (see MAX_EXCUSED_STALLS). */
  excused?: number;
}

interface TargetState {
  /** As given to `set` (not copied: callers must not change it afterwards). */
  target: Target;
  config: VerdictConfig;
  /** Whose share of the probe slots this target uses (its namespace). */
  tenant: string;
  phase: number;
  literal: boolean;
  /** Bumped on change and removal: results of older runs are dropped. */
  gen: number;
  /** Matches the heap entry that is current for this target. */
  slot: number;
  plannedAt: number;
  /** The entry in the heap is a recheck (off the phase grid, no jitter). */
  rechecking: boolean;
  running: boolean;
  removed: boolean;
  addresses: Map<string, AddressState>;
  /** Verdict while no address is known (the name does not resolve). */
  unresolved: VerdictState;
  overall: OverallVerdict;
  /** Address-independent probes (heartbeat, none) present: run once per run, shared by all addresses. */
  hasShared: boolean;
  /** Only `none` probes (or none at all): registration only. */
  registrationOnly: boolean;
  signals: Set<ProbeSignal>;
  /** Probes waiting for a concurrency slot; created when the first one has to wait. */
  tickets?: Set<Ticket>;
  lastProbeAt?: number;
}

interface HeapEntry {
  /** When the run timer serves it: `due` rounded up to its tick. */
  at: number;
  /** When the run is due: its slot (`planned`) plus this run's jitter. */
  due: number;
  planned: number;
  slot: number;
  ts: TargetState;
}

const cancelled = fail(Reason.NetworkError, "cancelled");

/**
 * Failed runs of an address in a row that stalls may excuse. An operator
 * whose loop is blocked all the time must not keep a dead target published
 * for ever: the next failure counts, stall or not.
 */
export const MAX_EXCUSED_STALLS = 3;
const noProbe = ok("no probe");
const registered: VerdictInput = {
  ok: true,
  reason: Reason.NoProbe,
  message: "no probe configured",
  definitive: true,
};

function sameTarget(a: Target, b: Target): boolean {
  return a.host === b.host && deepEqual(a.ports ?? {}, b.ports ?? {}) && deepEqual(a.check, b.check);
}

/** The part of the id before its first "/" (the namespace of "namespace/name"). */
export function tenantOf(t: Target): string {
  if (t.tenant !== undefined) return t.tenant;
  const slash = t.id.indexOf("/");
  return slash < 0 ? "" : t.id.slice(0, slash);
}

/** A timeout is the loop's doing when it was blocked for a quarter of the timeout (10 ms at least). */
export function stalledTimeout(blockedMs: number, timeoutMs: number): boolean {
  return blockedMs >= Math.max(10, timeoutMs / 4);
}

function validate(t: Target): void {
  const c = t.check;
  if (!t.id) throw new Error("target id is empty");
  if (!t.host) throw new Error(`target ${t.id}: host is empty`);
  if (!(c.intervalMs > 0)) throw new Error(`target ${t.id}: intervalMs must be > 0`);
  if (!(c.timeoutMs > 0)) throw new Error(`target ${t.id}: timeoutMs must be > 0`);
}

/** Redirect host names cached at most (their addresses are kept for `dnsRefreshMs`). */
export const MAX_REDIRECT_NAMES = 1024;

/** Results counted toward a threshold that has not flipped the verdict yet. */
function pending(v: VerdictState): boolean {
  if (v.underlying === "Healthy") return v.failures > 0;
  if (v.underlying === "Unhealthy") return v.successes > 0;
  return v.failures > 0 || v.successes > 0;
}

/** recheckInterval; default a quarter of the interval, at most the timeout. */
export function recheckMsOf(check: CheckSpec): number {
  return check.recheckIntervalMs ?? Math.min(check.intervalMs / 4, check.timeoutMs);
}

export function createProbeEngine(options: ProbeEngineOptions = {}): ProbeEngine {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const onError = options.onError ?? ((err: unknown) => console.error("probe engine callback failed:", err));
  let policy: DestinationPolicy = destinationPolicy(options.policy);
  const slots: Limiter = limiter({
    maxConcurrent: options.maxConcurrent ?? 512,
    maxPerHost: options.maxPerHost ?? 16,
    reserve: options.reserve,
  });
  const maxAddresses = Math.max(1, options.maxAddressesPerName ?? 16);
  // Sampled only while a probe is in flight: an idle engine does not wake up.
  const stalls: StallMonitor = options.stalls ?? stallMonitor({ clock, onDemand: true });
  const dns: DnsCache = dnsCache({
    resolver: options.resolver ?? systemResolver,
    clock,
    refreshMs: options.dnsRefreshMs ?? 30_000,
    negativeTtlMs: options.dnsNegativeTtlMs ?? 5_000,
    timeoutMs: 5_000,
  });
  // Names that redirects lead to belong to no target: their own cache, bounded (least recently
  // used first) and expiring, so a target that redirects to a new name at every probe cannot grow
  // it, and cannot push the targets' own names out.
  const redirectDns: DnsCache = dnsCache({
    resolver: options.resolver ?? systemResolver,
    clock,
    refreshMs: options.dnsRefreshMs ?? 30_000,
    negativeTtlMs: options.dnsNegativeTtlMs ?? 5_000,
    timeoutMs: 5_000,
    maxEntries: MAX_REDIRECT_NAMES,
  });
  const pool = connectionPool({
    keepAlive: options.httpKeepAlive ?? true,
    maxAgeMs: options.httpConnectionMaxAgeMs ?? 60_000,
    maxIdlePerKey: options.maxPerHost ?? 16,
    idleTimeoutMs: 30_000,
  });
  const httpDeps = { pool, resolveAllowed };
  const tickMs = Math.max(1, options.tickMs ?? 10);
  const maxTickMs = Math.max(tickMs, options.maxTickMs ?? 100);
  /** Regular runs per second of all targets together (what the tick adapts to). */
  let runsPerSecond = 0;
  const rateOf = (t: Target) =>
    t.check.probes.every((p) => p.type === "none") ? 0 : 1000 / t.check.intervalMs;
  const grpc = grpcPool(() => clock.now());
  const targets = new Map<string, TargetState>();
  const hostRefs = new Map<string, number>();
  // The heap's own rounding is `tickMs`; entries come rounded to their tick already (`schedule`).
  const runs = timerHeap<HeapEntry>(clock, tickMs, (top, now) => due(top, now));
  let closed = false;
  const counters = { runs: 0, probes: 0, skippedSlots: 0, rechecks: 0, expired: 0, voidedByStalls: 0 };
  const sweepTimer = { current: undefined as Timer | undefined };

  const emit = (t: Transition) => {
    if (!options.onTransition) return;
    try {
      options.onTransition(t);
    } catch (err) {
      onError(err);
    }
  };
  const observe = (o: ProbeObservation) => {
    try {
      options.onProbe?.(o);
    } catch (err) {
      onError(err);
    }
  };
  /** An outcome decided without probing (`none`, refused, no such port, no address): latency 0. */
  const observeLocal = (
    ts: TargetState,
    address: string | undefined,
    type: ProbeType,
    outcome: ProbeResult,
    due: number,
  ) => {
    if (!options.onProbe) return;
    const now = clock.now();
    const o: ProbeObservation = {
      id: ts.target.id,
      type,
      ok: outcome.ok,
      reason: outcome.reason,
      at: now,
      latencyMs: 0,
      lateMs: now - due,
      local: true,
    };
    if (address !== undefined) o.address = address;
    if (isVoided(outcome)) o.voided = outcome.voided;
    observe(o);
  };

  // --- scheduling: one clock timer for the earliest run -------------------

  /**
   * A result differs from the verdict it would have to overturn: the next
   * runs are rechecks (the first at once, then at recheckInterval: `nextRun`)
   * until the threshold is met or a result agrees again (fast confirmation),
   * so a threshold of 3 costs one recheckInterval, not 2 intervals. Judged on the threshold
   * verdict (not the damped one), so flap damping does not keep rechecking.
   */
  function confirming(ts: TargetState): boolean {
    // A recheckInterval of a whole interval turns fast confirmation off.
    if (ts.registrationOnly || recheckMsOf(ts.target.check) >= ts.target.check.intervalMs) return false;
    if (ts.addresses.size === 0) return pending(ts.unresolved);
    for (const a of ts.addresses.values()) if (pending(a.verdict)) return true;
    return false;
  }

  /** A heap entry came due at `now`. */
  function due(top: HeapEntry, now: number): void {
    const ts = top.ts;
    // A target has one current entry; older ones (changed, removed) are dropped here.
    if (ts.removed || ts.slot !== top.slot || ts.running) return;
    const interval = ts.target.check.intervalMs;
    if (now - top.due > interval / 2) {
      // The process stalled (GC, CPU starvation): skip this slot rather than probe
      // everything at once when it resumes; the target keeps its phase.
      const next = ts.rechecking
        ? { at: slotAtOrAfter(now, ts.phase, interval), skipped: 0 }
        : nextSlot(top.planned, now, interval);
      counters.skippedSlots += 1 + next.skipped;
      schedule(ts, next.at);
      return;
    }
    if (ts.rechecking) counters.rechecks++;
    startRun(ts, top.planned, top.due);
  }

  function schedule(ts: TargetState, planned: number, recheck = false): void {
    ts.slot++;
    ts.plannedAt = planned;
    ts.rechecking = recheck;
    const check = ts.target.check;
    // Rechecks keep the fine tick: they are what makes a verdict change fast.
    const due = recheck ? planned : planned + jitterFor(check.jitterMs ?? 0, check.intervalMs, random);
    const tick = recheck ? tickMs : tickFor(check.intervalMs, runsPerSecond, tickMs, maxTickMs);
    runs.push({ at: onTick(due, tick), due, planned, slot: ts.slot, ts });
  }

  /** `planned` is the slot (the phase); `due` adds this run's jitter. */
  function startRun(ts: TargetState, planned: number, due: number): void {
    ts.running = true;
    counters.runs++;
    const gen = ts.gen;
    const after = () => {
      if (ts.gen !== gen || ts.removed) return;
      ts.running = false;
      const check = ts.target.check;
      const next = nextRun({
        planned,
        now: clock.now(),
        phase: ts.phase,
        intervalMs: check.intervalMs,
        recheckMs: recheckMsOf(check),
        rechecking: ts.rechecking,
        confirming: confirming(ts),
      });
      counters.skippedSlots += next.skipped;
      schedule(ts, next.at, next.recheck);
    };
    run(ts, gen, due).then(after, (err: unknown) => {
      onError(err);
      after();
    });
  }

  // --- one run: resolve, probe every address, step the verdicts -----------

  async function run(ts: TargetState, gen: number, due: number): Promise<void> {
    if (!ts.literal) {
      const r = await dns.resolve(ts.target.host);
      if (ts.gen !== gen) return;
      const now = clock.now();
      if (r.ok) {
        syncAddresses(ts, capped(r.addresses), now);
        if (ts.unresolved.failures > 0) ts.unresolved = initialVerdict(now);
      } else if (r.authoritative || ts.addresses.size === 0) {
        syncAddresses(ts, [], now);
        ts.lastProbeAt = now;
        const outcome = fail(Reason.DNSFailure, r.message);
        ts.unresolved = step(ts.unresolved, outcome, now, ts.config).state;
        updateOverall(ts, now);
        // Nothing was probed, but the run is finished: report it like one.
        const probes = ts.target.check.probes;
        if (probes.length === 0) observeLocal(ts, undefined, "none", outcome, due);
        for (const p of probes) observeLocal(ts, undefined, p.type, outcome, due);
        return;
      }
      // A transient failure with known addresses: keep probing them.
    }
    const probes = ts.target.check.probes;
    let shared: Map<number, ProbeResult> | undefined;
    if (ts.hasShared && !ts.registrationOnly) {
      shared = new Map();
      for (let i = 0; i < probes.length; i++) {
        const p = probes[i]!;
        if (p.type === "heartbeat") shared.set(i, await runHeartbeat(ts, p, due));
        else if (p.type === "none") {
          shared.set(i, noProbe);
          observeLocal(ts, undefined, "none", noProbe, due);
        }
        if (ts.gen !== gen) return;
      }
    }
    if (ts.addresses.size === 1) {
      // The common case (one IP): no arrays, no Promise.all.
      const a: AddressState = ts.addresses.values().next().value!;
      const input = await probeAddress(ts, gen, a, shared, due);
      if (ts.gen !== gen) return;
      conclude(ts, a, input);
    } else {
      const list = [...ts.addresses.values()];
      const inputs = await Promise.all(list.map((a) => probeAddress(ts, gen, a, shared, due)));
      if (ts.gen !== gen) return;
      for (let i = 0; i < list.length; i++) conclude(ts, list[i]!, inputs[i]!);
    }
    updateOverall(ts, clock.now());
  }

  function conclude(ts: TargetState, a: AddressState, input: VerdictInput | Voided): void {
    if (ts.addresses.get(a.address) !== a) return; // dropped by a re-resolution meanwhile
    if (isVoided(input)) {
      // No result: the verdict stays as it was.
      if (input.voided === "queue") return;
      if ((a.excused ?? 0) < MAX_EXCUSED_STALLS) {
        a.excused = (a.excused ?? 0) + 1;
        return;
      }
    }
    if (a.excused) a.excused = 0;
    const now = clock.now();
    ts.lastProbeAt = now;
    a.lastProbeAt = now;
    const r = step(a.verdict, input, now, ts.config);
    a.verdict = r.state;
    if (r.change) emit({ id: ts.target.id, address: a.address, ...r.change, at: now });
    if (input.role !== a.role) {
      a.role = input.role;
      if (options.onRole) {
        try {
          options.onRole(ts.target.id, a.address, a.role);
        } catch (err) {
          onError(err);
        }
      }
    }
  }

  async function runHeartbeat(ts: TargetState, p: HeartbeatProbeSpec, due: number) {
    const start = clock.now();
    const reader = options.leaseReader;
    const timeoutMs = ts.target.check.timeoutMs;
    const outcome = reader
      ? await new Promise<Outcome>((resolve) => {
          // A reader backed by a cache answers at once; one that hangs must not stall the target.
          const timer = clock.setTimer(
            () => resolve(fail(Reason.LeaseReadError, `reading the Lease took more than ${timeoutMs} ms`)),
            timeoutMs,
          );
          heartbeatProbe(p, reader, () => clock.now()).then((o) => {
            timer.cancel();
            resolve(o);
          });
        })
      : fail(Reason.LeaseReadError, "no lease reader configured");
    if (options.onProbe) {
      const end = clock.now();
      observe({
        id: ts.target.id,
        type: "heartbeat",
        ok: outcome.ok,
        reason: outcome.reason,
        at: start,
        latencyMs: end - start,
        lateMs: start - due,
      });
    }
    return outcome;
  }

  function probeAddress(
    ts: TargetState,
    gen: number,
    a: AddressState,
    shared: Map<number, ProbeResult> | undefined,
    due: number,
  ): Promise<VerdictInput | Voided> {
    const probes = ts.target.check.probes;
    if (a.denied) {
      const refused = { ...fail(Reason.DestinationDenied, a.denied), definitive: true };
      // Heartbeat and `none` outcomes were reported with the shared part of the run.
      let reported = false;
      for (const p of probes) {
        if (p.type === "heartbeat" || p.type === "none") continue;
        observeLocal(ts, a.address, p.type, refused, due);
        reported = true;
      }
      if (!reported && ts.registrationOnly) observeLocal(ts, a.address, "none", refused, due);
      return Promise.resolve(refused);
    }
    if (ts.registrationOnly) {
      observeLocal(ts, a.address, "none", registered, due);
      return Promise.resolve(registered);
    }
    if (probes.length === 1 && !shared) return networkProbe(ts, gen, a.address, probes[0]!, due);
    const outcomes: Promise<ProbeResult>[] = [];
    for (let i = 0; i < probes.length; i++) {
      const s = shared?.get(i);
      outcomes.push(s ? Promise.resolve(s) : networkProbe(ts, gen, a.address, probes[i]!, due));
    }
    return Promise.all(outcomes).then((results) => combineResults(results, ts.target.check.combine ?? "all"));
  }

  function portOf(ts: TargetState, port: number | string): number | undefined {
    const n = typeof port === "number" ? port : ts.target.ports?.[port];
    return n !== undefined && Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
  }

  /**
   * One http/tcp/grpc probe of one address: waits for a slot, runs under the
   * deadline. A probe must get its slot within its timeout of the time its
   * run asked for it, or it is dropped without connecting (no result): a
   * queued probe never starts late. Once started it has its whole timeout, so a Timeout always
   * means the target took that long, unless the event loop was blocked
   * meanwhile (then it is no result either).
   */
  function networkProbe(
    ts: TargetState,
    gen: number,
    address: string,
    p: ProbeSpec,
    due: number,
  ): Promise<ProbeResult> {
    if (p.type === "heartbeat" || p.type === "none") return Promise.resolve(ok());
    const port = portOf(ts, p.port);
    if (port === undefined) {
      const outcome = fail(Reason.PortNotFound, `port ${JSON.stringify(p.port)} is not a port of the target`);
      observeLocal(ts, address, p.type, outcome, due);
      return Promise.resolve(outcome);
    }
    return new Promise<ProbeResult>((resolve) => {
      let ticket: Ticket | undefined;
      let started = false;
      let expiry: Timer | undefined;
      const timeoutMs = ts.target.check.timeoutMs;
      // Counted from when the run asked for the slot (its scheduled start, after name resolution).
      const latestStart = clock.now() + timeoutMs;
      const expire = () => {
        ticket?.release();
        if (ticket) ts.tickets?.delete(ticket);
        if (ts.gen !== gen) {
          resolve(cancelled); // its target changed or went away meanwhile
          return;
        }
        counters.expired++;
        const outcome: Voided = {
          ...fail(Reason.Timeout, `no probe slot free within ${timeoutMs} ms of the scheduled time`),
          voided: "queue",
        };
        observeLocal(ts, address, p.type, outcome, due);
        resolve(outcome);
      };
      const begin = () => {
        const queued = ticket !== undefined;
        started = true;
        expiry?.cancel();
        if (ts.gen !== gen) {
          // Reached the front of the queue after its target changed or went away.
          queueMicrotask(() => ticket?.release());
          resolve(cancelled);
          return;
        }
        if (clock.now() > latestStart) {
          queueMicrotask(expire);
          return;
        }
        const host = ts.target.host;
        const signal = new ProbeSignal();
        ts.signals.add(signal);
        const start = clock.now();
        let stalled = false;
        stalls.hold();
        const deadline = clock.setTimer(() => {
          stalled = stalledTimeout(stalls.blockedMs(start, clock.now()), timeoutMs);
          signal.abort(new ProbeTimeout(`no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        counters.probes++;
        let pending: Promise<Outcome>;
        if (p.type === "http") {
          pending = httpProbe(p, { address, host, port, signal }, httpDeps);
        } else if (p.type === "tcp") {
          pending = tcpProbe({ address, host, port, signal, ...(p.tls ? { tls: p.tls } : {}) });
        } else if (p.type === "udp") {
          pending = udpProbe(p, { address, port, signal });
        } else if (p.type === "postgres") {
          pending = postgresProbe(p, { address, host, port, signal });
        } else if (p.type === "redis") {
          pending = redisProbe(p, { address, host, port, signal });
        } else {
          const idleMs = Math.max(60_000, 3 * ts.target.check.intervalMs);
          pending = grpcProbe(p, { address, host, port, signal, timeoutMs, idleMs }, grpc);
        }
        const done = (settled: Outcome) => {
          deadline.cancel();
          stalls.release();
          const outcome = withLatency(settled, clock.now() - start, ts.target.check.degradedLatencyMs);
          ts.signals.delete(signal);
          if (ticket) {
            ticket.release();
            ts.tickets?.delete(ticket);
          }
          let result: ProbeResult = outcome;
          if (stalled && !outcome.ok) {
            counters.voidedByStalls++;
            result = { ...outcome, voided: "stall" };
          }
          if (options.onProbe && ts.gen === gen) {
            const o: ProbeObservation = {
              id: ts.target.id,
              address,
              type: p.type,
              ok: result.ok,
              reason: result.reason,
              at: start,
              latencyMs: clock.now() - start,
              lateMs: start - due,
            };
            if (queued) o.queued = true;
            if (isVoided(result)) o.voided = result.voided;
            observe(o);
          }
          resolve(result);
        };
        // Probes settle with an outcome; a rejection would be a bug, still reported as a failure.
        pending.then(done, (err: unknown) => {
          onError(err);
          done(
            fail(Reason.NetworkError, `probe failed: ${err instanceof Error ? err.message : String(err)}`),
          );
        });
      };
      ticket = slots.acquire({ tenant: ts.tenant, flow: ts.target.id, host: address }, begin);
      // Queued: kept so that a removal can take it out of the queue, and dropped at its deadline.
      if (!started) {
        ts.tickets ??= new Set();
        ts.tickets.add(ticket);
        expiry = clock.setTimer(() => {
          if (!started) expire();
        }, latestStart - clock.now());
      }
    });
  }

  /** For redirects: resolve a host and apply the destination policy. */
  async function resolveAllowed(host: string): Promise<{ address: string } | Outcome> {
    const r = await redirectDns.resolve(host);
    if (!r.ok) return fail(Reason.DNSFailure, r.message);
    const address = r.addresses[0]!;
    const d = policy.check(address);
    return d.allowed ? { address } : fail(Reason.DestinationDenied, `redirect refused: ${d.message}`);
  }

  // --- addresses and the overall verdict ---------------------------------

  function newAddress(address: string, now: number): AddressState {
    const d = policy.check(address);
    return d.allowed
      ? { address, verdict: initialVerdict(now) }
      : { address, verdict: initialVerdict(now), denied: d.message };
  }

  /** At most `maxAddresses` of a name's addresses: the first in sorted order, stable across rotating answers. */
  function capped(addresses: string[]): string[] {
    return addresses.length <= maxAddresses ? addresses : [...addresses].sort().slice(0, maxAddresses);
  }

  function syncAddresses(ts: TargetState, addresses: string[], now: number): void {
    const wanted = new Set(addresses);
    for (const [address, a] of ts.addresses) {
      if (wanted.has(address)) continue;
      ts.addresses.delete(address);
      if (a.verdict.verdict !== "Unknown") {
        const message = `${address} no longer among the addresses of ${ts.target.host}`;
        emit({
          id: ts.target.id,
          address,
          from: a.verdict.verdict,
          to: "Unknown",
          reason: Reason.AddressRemoved,
          message,
          at: now,
        });
      }
    }
    for (const address of addresses) {
      if (!ts.addresses.has(address)) ts.addresses.set(address, newAddress(address, now));
    }
  }

  function updateOverall(ts: TargetState, now: number): void {
    const prev = ts.overall;
    const update = overallVerdict(ts.addresses.values(), ts.addresses.size, ts.unresolved, prev, now);
    if (!update) return;
    const next = update.overall;
    ts.overall = next;
    if (update.changed)
      emit({
        id: ts.target.id,
        from: prev.verdict,
        to: next.verdict,
        reason: next.reason,
        message: next.message,
        ...(next.degraded ? { degraded: next.degraded } : {}),
        at: now,
      });
  }

  // --- targets -----------------------------------------------------------

  function cancelInFlight(ts: TargetState): void {
    for (const signal of ts.signals) signal.abort(new Error("target changed or removed"));
    ts.signals.clear();
    if (ts.tickets) for (const t of ts.tickets) t.release();
    ts.tickets?.clear();
  }

  function ref(host: string): void {
    hostRefs.set(host, (hostRefs.get(host) ?? 0) + 1);
  }
  function unref(host: string): void {
    const n = (hostRefs.get(host) ?? 1) - 1;
    if (n > 0) hostRefs.set(host, n);
    else {
      hostRefs.delete(host);
      dns.forget(host);
    }
  }

  function firstSlot(t: Target, now: number): number {
    const c = t.check;
    const start = now + (c.initialDelayMs ?? 0);
    // Registration-only targets need no spreading: nothing is probed.
    if (c.probes.every((p) => p.type === "none")) return start;
    return slotAtOrAfter(start, phaseOf(t.id, c.intervalMs), c.intervalMs);
  }

  function sweep(): void {
    if (closed) return;
    grpc.sweep(clock.now());
    dns.sweep();
    redirectDns.sweep();
    sweepTimer.current = clock.setTimer(sweep, 30_000);
  }
  sweepTimer.current = clock.setTimer(sweep, 30_000);

  function toSummary(ts: TargetState): TargetSummary {
    const addresses: AddressSummary[] = [];
    for (const a of ts.addresses.values()) {
      const s: AddressSummary = {
        address: a.address,
        verdict: a.verdict.verdict,
        reason: a.verdict.reason,
        message: a.verdict.message,
        since: a.verdict.since,
      };
      if (a.verdict.degraded) s.degraded = a.verdict.degraded;
      if (a.lastProbeAt !== undefined) s.lastProbeAt = a.lastProbeAt;
      if (a.role !== undefined) s.role = a.role;
      addresses.push(s);
    }
    const s: TargetSummary = { id: ts.target.id, ...ts.overall, addresses };
    if (ts.lastProbeAt !== undefined) s.lastProbeAt = ts.lastProbeAt;
    return s;
  }

  function remove(id: string): void {
    const ts = targets.get(id);
    if (!ts) return;
    targets.delete(id);
    runsPerSecond = targets.size === 0 ? 0 : Math.max(0, runsPerSecond - rateOf(ts.target));
    ts.removed = true;
    ts.gen++;
    cancelInFlight(ts);
    unref(ts.target.host);
  }

  return {
    set(target) {
      if (closed) throw new Error("probe engine is closed");
      validate(target);
      const existing = targets.get(target.id);
      // Compared with the target held (rather than a JSON key kept per target: a few hundred bytes each).
      if (existing && sameTarget(existing.target, target)) return;
      const now = clock.now();
      const config = normalizeConfig(target.check);
      const literal = isIP(target.host) !== 0;
      const probes = target.check.probes;
      const hasShared = probes.some((p) => p.type === "heartbeat" || p.type === "none");
      const registrationOnly = probes.every((p) => p.type === "none");
      if (existing) {
        // A change: cancel what is in flight, keep the verdicts unless the host changed.
        cancelInFlight(existing);
        existing.gen++;
        existing.running = false;
        if (existing.target.host !== target.host) {
          syncAddresses(existing, [], now);
          unref(existing.target.host);
          ref(target.host);
          existing.unresolved = initialVerdict(now);
          if (literal) syncAddresses(existing, [target.host.toLowerCase()], now);
          updateOverall(existing, now);
        }
        runsPerSecond = Math.max(0, runsPerSecond - rateOf(existing.target)) + rateOf(target);
        existing.target = target;
        existing.tenant = tenantOf(target);
        existing.config = config;
        existing.literal = literal;
        existing.hasShared = hasShared;
        existing.registrationOnly = registrationOnly;
        existing.phase = phaseOf(target.id, target.check.intervalMs);
        schedule(existing, slotAtOrAfter(now, existing.phase, target.check.intervalMs));
        return;
      }
      const ts: TargetState = {
        target,
        config,
        tenant: tenantOf(target),
        phase: phaseOf(target.id, target.check.intervalMs),
        literal,
        gen: 0,
        slot: 0,
        plannedAt: 0,
        rechecking: false,
        running: false,
        removed: false,
        addresses: new Map(),
        unresolved: initialVerdict(now),
        overall: { verdict: "Unknown", reason: Reason.Pending, message: "not probed yet", since: now },
        hasShared,
        registrationOnly,
        signals: new Set(),
      };
      if (literal) ts.addresses.set(target.host.toLowerCase(), newAddress(target.host.toLowerCase(), now));
      targets.set(target.id, ts);
      runsPerSecond += rateOf(target);
      ref(target.host);
      schedule(ts, firstSlot(target, now));
    },
    remove,
    setPolicy(config) {
      policy = destinationPolicy(config);
      for (const ts of targets.values()) {
        for (const a of ts.addresses.values()) {
          const d = policy.check(a.address);
          if (d.allowed) delete a.denied;
          else a.denied = d.message;
        }
      }
    },
    summary(id) {
      const ts = targets.get(id);
      return ts ? toSummary(ts) : undefined;
    },
    *summaries() {
      for (const ts of targets.values()) yield toSummary(ts);
    },
    has(id) {
      return targets.has(id);
    },
    stats() {
      let addresses = 0;
      for (const ts of targets.values()) addresses += ts.addresses.size;
      return {
        targets: targets.size,
        addresses,
        inFlight: slots.inFlight,
        queued: slots.queued,
        runs: counters.runs,
        probes: counters.probes,
        skippedSlots: counters.skippedSlots,
        rechecks: counters.rechecks,
        expired: counters.expired,
        voidedByStalls: counters.voidedByStalls,
        dnsNames: dns.size + redirectDns.size,
        grpcChannels: grpc.size,
      };
    },
    close() {
      if (closed) return;
      closed = true;
      for (const id of [...targets.keys()]) remove(id);
      runs.close();
      sweepTimer.current?.cancel();
      if (!options.stalls) stalls.stop();
      pool.destroy();
      grpc.close();
    },
  };
}
