/**
 * Start-up at scale (issue 18): N ServiceInstances across S services, the
 * operator started over them (an install over existing objects: no status,
 * nothing published), in a child process. Two figures, measured by an
 * independent watcher: start → every service's EndpointSlices and ConfigMap
 * complete ("all sets published"), and start → every instance's status
 * written. The suite's set-up (`bench/setup.ts`), without churn.
 *
 * `--base <checkout>` compares with another checkout's operator
 * (`<checkout>/bench/operator-child.ts`) in the same sandbox, rounds
 * interleaved (this one, base, this one, ...) so that machine noise hits
 * both alike; between rounds statuses are removed and the published
 * objects deleted. `--profile <prefix>` writes a V8 CPU profile per round
 * from start to all sets published (`<prefix>-<side>-<round>.cpuprofile`;
 * summarise with `node bench/cpu-summary.ts`).
 *
 *   node bench/startup.bench.ts --instances 10000
 *   node bench/startup.bench.ts --instances 10000 --rounds 2 --base /tmp/roster-main
 *   options: --instances N --services S --interval 10s --rounds R --base DIR --profile PREFIX
 *            --max-wait 900 (seconds)
 *            --kubeconfig FILE (a running sandbox, started with
 *              --apiserver-arg=--service-cluster-ip-range=10.0.0.0/16; its namespace
 *              `startup` is kept, and reused when it holds the N instances already)
 */
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { installCrds } from "../src/dev/crds.ts";
import { LABEL_MANAGED_BY, ROSTER_MANAGER } from "../src/publish/labels.ts";
import {
  createNamespace,
  type OperatorProcess,
  pool,
  sorted,
  startCluster,
  startOperatorProcess,
  startTargets,
  until,
  watch,
} from "./lib.ts";
import { type Figure, report } from "./report.ts";
import { createInstances, operatorDefaults } from "./setup.ts";

const { values: args } = parseArgs({
  options: {
    instances: { type: "string", default: "10000" },
    services: { type: "string" },
    interval: { type: "string", default: "10s" },
    rounds: { type: "string", default: "1" },
    base: { type: "string" },
    profile: { type: "string" },
    "max-wait": { type: "string", default: "900" },
    kubeconfig: { type: "string" },
  },
});

const N = Number(args.instances);
const S = Number(args.services ?? Math.min(5000, Math.max(100, Math.round(N / 10))));
const intervalSeconds = Number.parseFloat(args.interval);
const rounds = Number(args.rounds);
const svc = (s: number) => `svc-${String(s).padStart(4, "0")}`;
const perService = (s: number) => Math.floor(((s + 1) * N) / S) - Math.floor((s * N) / S);
const load1 = () => Math.round(loadavg()[0]! * 100) / 100;
const round1 = (x: number) => Math.round(x * 10) / 10;
const sides = [
  { name: "this", script: undefined as string | undefined },
  ...(args.base ? [{ name: "base", script: resolve(args.base, "bench/operator-child.ts") }] : []),
];

interface Round {
  side: string;
  round: number;
  setsSeconds: number;
  statusesSeconds: number;
  loadAverage: { start: number; end: number };
  cpuSeconds: number;
}

const started = args.kubeconfig ? undefined : await startCluster();
const cluster = started
  ? { kc: started.kc, kubeconfigPath: started.sandbox.kubeconfigPath, stop: started.stop }
  : await existingCluster(args.kubeconfig!);
// The bench's targets answer on a fixed port, so that instances created by an earlier run probe them.
const targets = await startTargets(16, "127.0.5", 18_918);
const ns = "startup";
const results: Round[] = [];
try {
  const kc = cluster.kc;
  const core = kc.makeApiClient(CoreV1Api);
  const existing = await core.readNamespace({ name: ns }).catch(() => undefined);
  let created = 0;
  if (existing) {
    const list = (await kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({
      group: "roster.dev",
      version: "v1alpha1",
      namespace: ns,
      plural: "serviceinstances",
      limit: 1,
    })) as { metadata?: { remainingItemCount?: number } };
    const count = (list.metadata?.remainingItemCount ?? 0) + 1;
    if (count !== N) throw new Error(`namespace ${ns} holds ${count} instances, not ${N}: delete it first`);
    console.log(`${N} instances in namespace ${ns} already`);
    await reset();
  } else {
    await createNamespace(kc, ns);
    created = await createInstances(kc, ns, N, {
      service: (i) => svc(Math.floor((i * S) / N)),
      targets,
      interval: `${intervalSeconds}s`,
      timeout: intervalSeconds > 1 ? "1s" : "500ms",
      failureThreshold: 2,
    });
    console.log(`${N} instances, ${S} services: created in ${created.toFixed(1)} s`);
  }

  for (let r = 0; r < rounds; r++) {
    for (const side of sides) {
      if (results.length > 0) await reset();
      const w = await watch(kc, ns, {
        sliceSelector: "endpointslice.kubernetes.io/managed-by=roster.dev",
        configMaps: true,
        instances: true,
      });
      let op: OperatorProcess | undefined;
      try {
        op = await startOperatorProcess([], side.script);
        const p = op;
        const start = load1();
        if (args.profile) await p.cpuProfile();
        const startedAt = await p.start({
          kubeconfig: cluster.kubeconfigPath,
          namespaces: [ns],
          ...operatorDefaults,
        });
        const cpu0 = await p.stats();
        let setsAt = 0;
        let statusesAt = 0;
        let lastLog = 0;
        let profiling = Boolean(args.profile);
        await until("all sets published and all statuses written", Number(args["max-wait"]) * 1000, () => {
          let slices = 0;
          let maps = 0;
          for (let s = 0; s < S; s++) {
            if (w.sliceReady.get(svc(s)) === perService(s)) slices++;
            if (w.mapReady.get(svc(s)) === perService(s)) maps++;
          }
          if (!setsAt && slices === S && maps === S) {
            setsAt = Date.now();
            if (profiling) {
              profiling = false;
              void p.cpuProfile(`${args.profile}-${side.name}-${r}.cpuprofile`);
            }
          }
          if (!statusesAt && w.healthy.size === N) statusesAt = Date.now();
          if (Date.now() - lastLog > 10_000) {
            lastLog = Date.now();
            console.log(
              `  [${side.name} ${r}] ${round1((Date.now() - startedAt) / 1000)} s: slice sets ${slices}/${S}, ConfigMaps ${maps}/${S}, statuses ${w.healthy.size}/${N}`,
            );
          }
          return setsAt > 0 && statusesAt > 0;
        });
        const cpu1 = await p.stats();
        const res: Round = {
          side: side.name,
          round: r,
          setsSeconds: (setsAt - startedAt) / 1000,
          statusesSeconds: (statusesAt - startedAt) / 1000,
          loadAverage: { start, end: load1() },
          cpuSeconds: (cpu1.userMicros + cpu1.systemMicros - cpu0.userMicros - cpu0.systemMicros) / 1e6,
        };
        console.log(
          `  [${side.name} ${r}] all sets published ${round1(res.setsSeconds)} s, all statuses ${round1(res.statusesSeconds)} s after start (load ${res.loadAverage.start}–${res.loadAverage.end})`,
        );
        results.push(res);
      } finally {
        w.stop();
        await op?.stop();
      }
    }
  }
  const median = (xs: number[]) => {
    const s = sorted(xs);
    return s.length ? (s[Math.floor((s.length - 1) / 2)]! + s[Math.floor(s.length / 2)]!) / 2 : Number.NaN;
  };
  const figures: Figure[] = sides.flatMap((side) => {
    const mine = results.filter((x) => x.side === side.name);
    const prefix = sides.length > 1 ? `${side.name}: ` : "";
    return [
      {
        name: `${prefix}start to all sets published (median)`,
        value: round1(median(mine.map((x) => x.setsSeconds))),
        unit: "s",
        target: "< 60 at 50k",
      },
      {
        name: `${prefix}start to all statuses written (median)`,
        value: round1(median(mine.map((x) => x.statusesSeconds))),
        unit: "s",
      },
      {
        name: `${prefix}operator CPU from caches synced to both`,
        value: round1(median(mine.map((x) => x.cpuSeconds))),
        unit: "s",
      },
    ];
  });
  report(`startup-${N >= 1000 ? `${N / 1000}k` : N}`, figures, {
    instances: N,
    services: S,
    intervalSeconds,
    createSeconds: created,
    base: args.base,
    rounds: results,
  });
} finally {
  await targets.close();
  await cluster.stop(true);
}

async function existingCluster(path: string) {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  await installCrds(kc);
  return { kc, kubeconfigPath: path, stop: async (_fast?: boolean) => undefined };
}

/** Back to an install over existing instances: no statuses, nothing published. */
async function reset(): Promise<void> {
  const kc = cluster.kc;
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const t0 = Date.now();
  const services = await core.listNamespacedService({ namespace: ns });
  await pool(services.items, 32, (s) =>
    core.deleteNamespacedService({ namespace: ns, name: s.metadata!.name! }),
  );
  await discovery.deleteCollectionNamespacedEndpointSlice({ namespace: ns });
  await core.deleteCollectionNamespacedConfigMap({
    namespace: ns,
    labelSelector: `${LABEL_MANAGED_BY}=${ROSTER_MANAGER}`,
  });
  await pool(
    Array.from({ length: N }, (_, i) => i),
    32,
    (i) =>
      custom.patchNamespacedCustomObjectStatus(
        {
          group: "roster.dev",
          version: "v1alpha1",
          namespace: ns,
          plural: "serviceinstances",
          name: `i-${i}`,
          body: [{ op: "remove", path: "/status" }],
        },
        setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
      ),
  );
  await core.deleteCollectionNamespacedEvent({ namespace: ns });
  console.log(`  reset in ${round1((Date.now() - t0) / 1000)} s`);
}
