/**
 * The soak's churn: random actions drawn from a seeded PRNG, each applied to
 * the ground truth first and then to the cluster or the probe targets (so a
 * published change can never be seen before the truth that explains it).
 *
 * Actions: flip a target healthy/unhealthy, create/delete an instance,
 * drain/undrain one, change a service's policy (panicThreshold 50 ↔ 0,
 * create or delete the DiscoveryPolicy), an outage (most of a service's
 * targets fail at once, which engages panic where it is on) and its
 * recovery, a service appearing (a new set of instances, sometimes with a
 * policy) or disappearing (all its instances and its policy deleted; names
 * come from a fixed pool, so they are reused). Creation and deletion weights
 * pull the population towards its targets.
 */
import { type CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { benchAddress, type Targets } from "../../bench/lib.ts";
import type { Rng } from "./prng.ts";
import type { Change, InstanceTruth, Truth } from "./truth.ts";

export interface ChurnConfig {
  namespace: string;
  /** Population the weights pull towards. */
  instances: number;
  services: number;
  intervalSeconds: number;
  timeoutMs: number;
  failureThreshold: number;
  successThreshold: number;
  panicThreshold: number;
  /** Self-check of the soak: every n-th action also fails a target behind the truth's back. */
  sabotageEvery?: number;
}

export interface ActionRecord {
  index: number;
  at: number;
  kind: string;
  service: string;
  detail: string;
}

export interface Churn {
  /** Creates the initial population (no history checking yet). */
  populate(): Promise<void>;
  /** Draws and applies one action. */
  step(): Promise<ActionRecord>;
  /** Recent actions on an address and on its service, for incident reports. */
  history(address: string): string[];
  /** "instance svc-03-117 of svc-03" for an address. */
  describe(address: string): string;
  counts: Record<string, number>;
}

const group = "roster.dev";
const version = "v1alpha1";
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

/** Wall-clock time of day (UTC) with tenths, to line up with operator logs. */
export const clockTime = (at: number) => new Date(at).toISOString().slice(11, 22);

/** An address per serial across 198.18.0.0/15 (64,000 per /16). */
export const soakAddress = (serial: number) =>
  benchAddress(serial % 64_000, 18 + Math.floor(serial / 64_000));

/** Retries an API call a few times: a write refused under load is not what the soak measures. */
async function retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (attempt >= 5 || (code !== undefined && code < 500 && code !== 429)) {
        throw new Error(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

export function createChurn(o: {
  rng: Rng;
  truth: Truth;
  custom: CustomObjectsApi;
  targets: Targets;
  config: ChurnConfig;
  /** Every truth change, as it happens (before the cluster sees it). */
  onChange(change: Change, at: number): void;
  now?: () => number;
}): Churn {
  const { rng, truth, custom, targets, config: c } = o;
  const now = o.now ?? Date.now;
  const ns = c.namespace;
  const pool = Array.from(
    { length: Math.ceil(c.services * 1.5) },
    (_, i) => `svc-${String(i).padStart(2, "0")}`,
  );
  let serial = 0;
  let index = 0;
  const counts: Record<string, number> = {};
  const serviceLog = new Map<string, string[]>();
  const addressLog = new Map<string, string[]>();
  const byAddress = new Map<string, InstanceTruth>();

  const remember = (map: Map<string, string[]>, key: string, line: string, keep: number) => {
    const list = map.get(key) ?? [];
    list.push(line);
    if (list.length > keep) list.shift();
    map.set(key, list);
  };

  const record = (kind: string, service: string, detail: string, addresses: readonly string[]) => {
    const at = now();
    const r: ActionRecord = { index: index++, at, kind, service, detail };
    counts[kind] = (counts[kind] ?? 0) + 1;
    const line = `#${r.index} ${clockTime(at)} ${kind} ${service}: ${detail}`;
    remember(serviceLog, service, line, 12);
    for (const a of addresses) remember(addressLog, a, line, 6);
    return r;
  };

  const change = (service: string, own: readonly string[], mutate: () => void) => {
    const ch = truth.change(service, own, mutate);
    o.onChange(ch, now());
  };

  const instancesOf = (service: string) =>
    [...(truth.services.get(service)?.instances ?? [])].map((n) => truth.instances.get(n)!);
  const existing = () => [...truth.services.keys()].filter((s) => truth.exists(s));
  const allInstances = () => [...truth.instances.values()];

  const instanceBody = (i: InstanceTruth) => ({
    apiVersion: `${group}/${version}`,
    kind: "ServiceInstance",
    metadata: { name: i.name },
    spec: {
      service: i.service,
      address: i.address,
      ports: [{ name: "http", port: targets.port }],
      drain: i.drain,
      healthCheck: {
        probes: [
          {
            type: "http",
            http: {
              host: targets.hosts[i.target % targets.hosts.length],
              port: "http",
              path: `/h/${i.target}`,
            },
          },
        ],
        interval: `${c.intervalSeconds}s`,
        timeout: `${c.timeoutMs}ms`,
        failureThreshold: c.failureThreshold,
        successThreshold: c.successThreshold,
      },
    },
  });

  const policyBody = (service: string, panicThreshold: number) => ({
    apiVersion: `${group}/${version}`,
    kind: "DiscoveryPolicy",
    metadata: { name: service },
    spec: { service, publish: { panicThreshold } },
  });

  async function createInstance(service: string, failing: boolean): Promise<InstanceTruth> {
    const s = serial++;
    const inst: InstanceTruth = {
      name: `${service}-${s}`,
      service,
      address: soakAddress(s),
      target: s,
      failing,
      drain: false,
    };
    byAddress.set(inst.address, inst);
    if (failing) targets.failing.add(s);
    else targets.failing.delete(s);
    change(service, [inst.address], () => {
      truth.instances.set(inst.name, inst);
      const svc = truth.services.get(service) ?? { name: service, instances: new Set<string>() };
      svc.instances.add(inst.name);
      truth.services.set(service, svc);
    });
    await retry(`create ${inst.name}`, () =>
      custom.createNamespacedCustomObject({
        group,
        version,
        namespace: ns,
        plural: "serviceinstances",
        body: instanceBody(inst),
      }),
    );
    return inst;
  }

  async function deleteInstance(inst: InstanceTruth): Promise<void> {
    change(inst.service, [inst.address], () => {
      truth.instances.delete(inst.name);
      truth.services.get(inst.service)?.instances.delete(inst.name);
    });
    targets.failing.delete(inst.target);
    await retry(`delete ${inst.name}`, () =>
      custom.deleteNamespacedCustomObject({
        group,
        version,
        namespace: ns,
        plural: "serviceinstances",
        name: inst.name,
      }),
    );
  }

  function setFailing(inst: InstanceTruth, failing: boolean): void {
    change(inst.service, [inst.address], () => {
      inst.failing = failing;
      if (failing) targets.failing.add(inst.target);
      else targets.failing.delete(inst.target);
    });
  }

  async function setPolicy(service: string, panicThreshold: number | undefined): Promise<void> {
    const before = truth.services.get(service)?.policy;
    const own = instancesOf(service).map((i) => i.address);
    change(service, own, () => {
      const svc = truth.services.get(service) ?? { name: service, instances: new Set<string>() };
      svc.policy = panicThreshold === undefined ? undefined : { panicThreshold };
      truth.services.set(service, svc);
    });
    if (panicThreshold === undefined) {
      await retry(`delete policy ${service}`, () =>
        custom.deleteNamespacedCustomObject({
          group,
          version,
          namespace: ns,
          plural: "discoverypolicies",
          name: service,
        }),
      );
    } else if (before === undefined) {
      await retry(`create policy ${service}`, () =>
        custom.createNamespacedCustomObject({
          group,
          version,
          namespace: ns,
          plural: "discoverypolicies",
          body: policyBody(service, panicThreshold),
        }),
      );
    } else {
      await retry(`patch policy ${service}`, () =>
        custom.patchNamespacedCustomObject(
          {
            group,
            version,
            namespace: ns,
            plural: "discoverypolicies",
            name: service,
            body: { spec: { publish: { panicThreshold } } },
          },
          mergePatch,
        ),
      );
    }
  }

  async function addService(service: string, size: number, withPolicy: boolean): Promise<string[]> {
    if (withPolicy) await setPolicy(service, c.panicThreshold);
    const created: InstanceTruth[] = [];
    for (let k = 0; k < size; k++) created.push(await createInstance(service, rng.next() < 0.1));
    return created.map((i) => i.address);
  }

  const clamp = (x: number) => Math.min(2, Math.max(0, x));

  async function step(): Promise<ActionRecord> {
    const r = await act();
    if (c.sabotageEvery && r.index % c.sabotageEvery === 0) {
      const victims = allInstances().filter((i) => !i.failing && !i.drain);
      if (victims.length) {
        const v = rng.pick(victims);
        targets.failing.add(v.target);
        record("sabotage", v.service, `${v.name} fails, truth not told`, [v.address]);
      }
    }
    return r;
  }

  async function act(): Promise<ActionRecord> {
    const services = existing();
    const instances = allInstances();
    const n = instances.length / c.instances;
    const s = services.length / c.services;
    const withInstances = services.filter((x) => instancesOf(x).length > 0);
    const weights: [string, number][] = [
      ["flip", instances.length ? 40 : 0],
      ["create", services.length ? 12 * clamp(2 - n) : 0],
      ["delete", instances.length ? 12 * clamp(n) : 0],
      ["drain", instances.length ? 4 : 0],
      ["policy", services.length ? 6 : 0],
      ["outage", withInstances.some((x) => instancesOf(x).length >= 3) ? 1.5 : 0],
      ["recover", instances.some((i) => i.failing) ? 2 : 0],
      ["add-service", services.length < pool.length ? 2 * clamp(2 - s) : 0],
      ["remove-service", services.length ? 2 * clamp(s) : 0],
    ];
    const total = weights.reduce((a, [, w]) => a + w, 0);
    let r = rng.next() * total;
    let kind = weights[0]![0];
    for (const [k, w] of weights) {
      if (r < w) {
        kind = k;
        break;
      }
      r -= w;
    }

    switch (kind) {
      case "flip": {
        const inst = rng.pick(instances);
        setFailing(inst, !inst.failing);
        return record(kind, inst.service, `${inst.name} ${inst.failing ? "fails" : "recovers"}`, [
          inst.address,
        ]);
      }
      case "create": {
        const service = rng.pick(services);
        const inst = await createInstance(service, rng.next() < 0.15);
        return record(kind, service, `${inst.name}${inst.failing ? " (failing)" : ""}`, [inst.address]);
      }
      case "delete": {
        const inst = rng.pick(instances);
        await deleteInstance(inst);
        return record(kind, inst.service, inst.name, [inst.address]);
      }
      case "drain": {
        const inst = rng.pick(instances);
        const drain = !inst.drain;
        change(inst.service, [inst.address], () => {
          inst.drain = drain;
        });
        await retry(`drain ${inst.name}`, () =>
          custom.patchNamespacedCustomObject(
            {
              group,
              version,
              namespace: ns,
              plural: "serviceinstances",
              name: inst.name,
              body: { spec: { drain } },
            },
            mergePatch,
          ),
        );
        return record(kind, inst.service, `${inst.name} ${drain ? "drained" : "undrained"}`, [inst.address]);
      }
      case "policy": {
        const service = rng.pick(services);
        const current = truth.services.get(service)?.policy?.panicThreshold;
        // No policy → panic on; on → off; off → on again or no policy.
        const next =
          current === undefined
            ? c.panicThreshold
            : current > 0
              ? 0
              : rng.next() < 0.5
                ? c.panicThreshold
                : undefined;
        if (next === undefined && instancesOf(service).length === 0) {
          // Deleting the last object of a service is remove-service's job.
          await setPolicy(service, c.panicThreshold);
          return record(kind, service, `panicThreshold ${c.panicThreshold}`, []);
        }
        await setPolicy(service, next);
        return record(kind, service, next === undefined ? "policy deleted" : `panicThreshold ${next}`, []);
      }
      case "outage": {
        const service = rng.pick(withInstances.filter((x) => instancesOf(x).length >= 3));
        const members = instancesOf(service);
        const hit = rng.sample(members, Math.ceil(members.length * 0.7));
        change(
          service,
          hit.map((i) => i.address),
          () => {
            for (const i of hit) {
              i.failing = true;
              targets.failing.add(i.target);
            }
          },
        );
        return record(
          kind,
          service,
          `${hit.length}/${members.length} targets fail`,
          hit.map((i) => i.address),
        );
      }
      case "recover": {
        const service = rng.pick([...new Set(instances.filter((i) => i.failing).map((i) => i.service))]);
        const hit = instancesOf(service).filter((i) => i.failing);
        change(
          service,
          hit.map((i) => i.address),
          () => {
            for (const i of hit) {
              i.failing = false;
              targets.failing.delete(i.target);
            }
          },
        );
        return record(
          kind,
          service,
          `${hit.length} targets recover`,
          hit.map((i) => i.address),
        );
      }
      case "add-service": {
        const service = rng.pick(pool.filter((x) => !truth.exists(x)));
        const size = 2 + rng.int(Math.max(1, Math.round((2 * c.instances) / c.services) - 2));
        const withPolicy = rng.next() < 0.5;
        const addresses = await addService(service, size, withPolicy);
        return record(kind, service, `${size} instances${withPolicy ? ", policy" : ""}`, addresses);
      }
      default: {
        const service = rng.pick(services);
        const members = instancesOf(service);
        for (const i of members) await deleteInstance(i);
        if (truth.services.get(service)?.policy) await setPolicy(service, undefined);
        return record(
          "remove-service",
          service,
          `${members.length} instances`,
          members.map((i) => i.address),
        );
      }
    }
  }

  return {
    counts,
    async populate() {
      const names = rng.sample(pool, c.services);
      for (const service of names) {
        const size = 2 + rng.int(Math.max(1, Math.round((2 * c.instances) / c.services) - 2));
        const addresses = await addService(service, size, rng.next() < 0.5);
        record("add-service", service, `${size} instances (initial)`, addresses);
      }
    },
    step,
    history(address) {
      const inst = byAddress.get(address);
      const lines = new Set([
        ...(addressLog.get(address) ?? []),
        ...(inst ? (serviceLog.get(inst.service) ?? []) : []),
      ]);
      return [...lines].sort(
        (a, b) => Number(a.slice(1, a.indexOf(" "))) - Number(b.slice(1, b.indexOf(" "))),
      );
    },
    describe(address) {
      const inst = byAddress.get(address);
      if (!inst) return `unknown address ${address}`;
      const live = truth.instances.get(inst.name) === inst;
      return `instance ${inst.name} of ${inst.service} (${live ? `${inst.failing ? "failing" : "passing"}${inst.drain ? ", drained" : ""}` : "deleted"})`;
    },
  };
}
