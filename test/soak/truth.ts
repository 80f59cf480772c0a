/**
 * The soak's ground truth: which instances exist, which of their targets
 * fail, which are drained, and each service's panic threshold; from these,
 * the ready set every service must publish once the operator has caught up
 * (docs/publish.md, "Endpoint states"):
 *
 * - an instance is ready when its target answers 200 and it is not drained;
 * - panic: with a threshold p > 0, when fewer than p % of the non-drained
 *   instances are healthy (strictly), every non-drained instance is ready.
 *
 * The model is written from the documented rules, not from the operator's
 * code, so that a bug in one is not copied into the other. Addresses are
 * never reused: an address names one instance for the whole soak.
 */

export interface InstanceTruth {
  name: string;
  service: string;
  address: string;
  /** The target id (`/h/<target>` answers 503 while failing). */
  target: number;
  failing: boolean;
  drain: boolean;
}

export interface ServiceTruth {
  name: string;
  instances: Set<string>;
  /** The DiscoveryPolicy's panicThreshold; undefined: no policy (operator default, 0). */
  policy?: { panicThreshold: number };
}

export interface Change {
  /** Addresses whose expected readiness changed, with the new value. */
  changed: Map<string, boolean>;
  /**
   * Addresses whose published state may legitimately move because of this
   * change: the ones acted on, and every address of the service when panic
   * is (or was) enabled, since panic couples them.
   */
  touched: Set<string>;
}

export interface Truth {
  readonly instances: Map<string, InstanceTruth>;
  readonly services: Map<string, ServiceTruth>;
  /** Expected ready addresses of a service. */
  readySet(service: string): Set<string>;
  /** Expected readiness of an address (false for unknown or deleted ones). */
  ready(address: string): boolean;
  /**
   * Runs `mutate` on the model of `service` and reports what changed.
   * `own` are the addresses acted on (always touched).
   */
  change(service: string, own: readonly string[], mutate: () => void): Change;
  /** True when the service has instances or a policy (so Roster publishes it). */
  exists(service: string): boolean;
}

export function isPanic(healthy: number, eligible: number, threshold: number): boolean {
  return threshold > 0 && eligible > 0 && healthy * 100 < threshold * eligible;
}

export function createTruth(): Truth {
  const instances = new Map<string, InstanceTruth>();
  const services = new Map<string, ServiceTruth>();
  const expected = new Map<string, boolean>();

  const readySet = (service: string): Set<string> => {
    const s = services.get(service);
    if (!s) return new Set();
    const eligible = [...s.instances].map((n) => instances.get(n)!).filter((i) => !i.drain);
    const healthy = eligible.filter((i) => !i.failing);
    const panic = isPanic(healthy.length, eligible.length, s.policy?.panicThreshold ?? 0);
    return new Set((panic ? eligible : healthy).map((i) => i.address));
  };

  const addressesOf = (service: string) =>
    [...(services.get(service)?.instances ?? [])].map((n) => instances.get(n)!.address);

  return {
    instances,
    services,
    readySet,
    ready: (address) => expected.get(address) ?? false,
    exists: (service) => {
      const s = services.get(service);
      return s !== undefined && (s.instances.size > 0 || s.policy !== undefined);
    },
    change(service, own, mutate) {
      const panicBefore = (services.get(service)?.policy?.panicThreshold ?? 0) > 0;
      const before = new Set(addressesOf(service));
      mutate();
      const s = services.get(service);
      if (s && s.instances.size === 0 && s.policy === undefined) services.delete(service);
      const panicAfter = (services.get(service)?.policy?.panicThreshold ?? 0) > 0;
      const after = addressesOf(service);
      const ready = readySet(service);
      const touched = new Set<string>(own);
      const changed = new Map<string, boolean>();
      for (const a of new Set([...before, ...after])) {
        const value = ready.has(a);
        if ((expected.get(a) ?? false) !== value) changed.set(a, value);
        if (value) expected.set(a, true);
        else expected.delete(a);
        if (panicBefore || panicAfter) touched.add(a);
      }
      for (const a of changed.keys()) touched.add(a);
      return { changed, touched };
    },
  };
}
