/**
 * The one narrow interface between probing and publishing. Writers (status,
 * EndpointSlices, ConfigMap) read verdicts through a `VerdictSource` and are
 * told which instance changed; they never see individual probe results. The
 * local implementation wraps this process's probe engine; a sharded prober
 * can feed the same interface from other replicas.
 */
import type {
  DatabaseRole,
  Degradation,
  ProbeEngine,
  TargetSummary,
  Transition,
  Verdict,
} from "../health/index.ts";

export interface AddressVerdict {
  address: string;
  verdict: Verdict;
  /** The database role the address's server last reported (postgres, redis probes). */
  role?: DatabaseRole;
}

export interface InstanceVerdict {
  /** The instance's overall verdict. */
  verdict: Verdict;
  reason: string;
  message: string;
  /** When the overall verdict last changed (ms). */
  since: number;
  /** Set while the verdict is Healthy but degraded: published at a reduced weight. */
  degraded?: Degradation;
  /** Verdict per probed address (the resolved addresses of the probe host). */
  addresses: AddressVerdict[];
  /** At least one probe run finished since this process started probing the instance. */
  probed: boolean;
}

export type VerdictListener = (instanceKey: string, transition?: Transition) => void;

export interface VerdictSource {
  get(instanceKey: string): InstanceVerdict | undefined;
  /** Called on every verdict transition and on each instance's first finished probe run. */
  subscribe(listener: VerdictListener): () => void;
}

/** Hooks to pass to `createProbeEngine` plus the source reading it. */
export interface EngineVerdicts extends VerdictSource {
  onTransition(t: Transition): void;
  onProbe(o: { id: string }): void;
  /** An address's database role changed: writers re-read the instance. */
  onRole(id: string): void;
  /** Forget an instance (it was removed from the engine). */
  forget(instanceKey: string): void;
  attach(engine: ProbeEngine): void;
}

export function engineVerdicts(): EngineVerdicts {
  let engine: ProbeEngine | undefined;
  const listeners = new Set<VerdictListener>();
  const probed = new Set<string>();
  const notify = (key: string, t?: Transition) => {
    for (const l of listeners) l(key, t);
  };
  return {
    attach(e) {
      engine = e;
    },
    get(key) {
      const s: TargetSummary | undefined = engine?.summary(key);
      if (!s) return undefined;
      return {
        verdict: s.verdict,
        reason: s.reason,
        message: s.message,
        since: s.since,
        addresses: s.addresses.map((a) =>
          a.role
            ? { address: a.address, verdict: a.verdict, role: a.role }
            : { address: a.address, verdict: a.verdict },
        ),
        probed: probed.has(key),
        ...(s.degraded ? { degraded: s.degraded } : {}),
      };
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onTransition(t) {
      // A transition is a finished run too (whichever hook comes first).
      probed.add(t.id);
      notify(t.id, t);
    },
    onProbe(o) {
      // Every finished run reports here, also those decided without a
      // network probe (registration only, refused addresses), so `probed`
      // never holds a service for the whole start-up hold.
      // Per-probe hook on the hot path: one Set lookup unless it is the first.
      if (probed.has(o.id)) return;
      probed.add(o.id);
      notify(o.id);
    },
    onRole(id) {
      notify(id);
    },
    forget(key) {
      probed.delete(key);
    },
  };
}
