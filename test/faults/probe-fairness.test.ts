// One namespace cannot starve another of probe slots. The operator runs with
// 64 probe slots (so a reserve of 8). A hostile namespace has four instances,
// each a DNS name (a real DNS server on loopback) that resolves to 70
// loopback addresses where listeners accept connections and never answer,
// each checked by 8 HTTP probes with a 55 s timeout: far more hung probes than
// there are slots, each holding its slot for 55 s. A victim namespace has one
// healthy instance, checked every second; its target then starts failing.
//
// Asserted (structure, not wall-clock): the hostile names are probed at 16
// addresses each (maxAddressesPerName), the hostile namespace holds all the
// slots it may (64 - 8) and never more, and not one of the victim's probes
// waited for a slot or was dropped: every victim run started on its own
// schedule, so the victim's detection time is what its own check makes it,
// at most interval x failureThreshold + timeout after the failure (the
// unchanged engine's thresholds are unit-tested). The victim is detected and
// unpublished.
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { test } from "node:test";
import { dnsServersResolver } from "../../src/health/dns.ts";
import type { ProbeObservation } from "../../src/health/index.ts";
import { eventually, testNamespace } from "../support/cluster.ts";
import { startDnsServer } from "../support/dns-server.ts";
import { FAST } from "../support/instances.ts";
import { startTestOperator } from "../support/operator.ts";
import { createInstance, getInstance, readyAddresses } from "../support/roster.ts";
import { httpTargets } from "../support/targets.ts";

const SLOTS = 64;
const RESERVE = SLOTS / 8;
const HUNG = 70;

/** Listeners on 127.0.2.1..count, all on one port, that accept and never answer. */
async function hungListeners(t: { after: (fn: () => unknown) => void }, count: number) {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  const close = () =>
    Promise.all(
      servers.map((s) => {
        for (const socket of sockets) socket.destroy();
        return new Promise((r) => s.close(r));
      }),
    );
  t.after(close);
  let port = 0;
  for (let i = 1; i <= count; i++) {
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    });
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, `127.0.2.${i}`, () => resolve());
    });
    port = (server.address() as { port: number }).port;
  }
  return { port, addresses: Array.from({ length: count }, (_, i) => `127.0.2.${i + 1}`), sockets };
}

test("a namespace hanging every probe it can does not delay another namespace's detection", async (t) => {
  const hostile = await testNamespace(t, "hostile");
  const victim = await testNamespace(t, "victim");
  const hung = await hungListeners(t, HUNG);
  const names = [0, 1, 2, 3].map((i) => `h${i}.hostile.test`);
  const dns = await startDnsServer(t, Object.fromEntries(names.map((n) => [n, hung.addresses])));
  const [target] = await httpTargets(t, 1);

  const observations: ProbeObservation[] = [];
  const operator = await startTestOperator(t, {
    namespaces: [hostile, victim],
    probing: {
      maxConcurrent: SLOTS,
      resolver: dnsServersResolver([dns.address]),
      observe: (o) => observations.push(o),
    },
  });

  await createInstance(victim, "v", {
    service: "web",
    address: "192.0.2.1",
    ports: [{ name: "http", port: target!.port }],
    healthCheck: {
      probes: [{ type: "http", http: { host: target!.host, port: "http", path: "/healthz" } }],
      ...FAST,
    },
  });
  await eventually(
    async () => ((await readyAddresses(victim, "web")).includes("192.0.2.1") ? true : undefined),
    {
      what: "the victim published as ready",
      timeoutMs: 90_000,
    },
  );

  for (const [i, name] of names.entries()) {
    await createInstance(hostile, `h${i}`, {
      service: "hog",
      address: name,
      ports: [{ name: "http", port: hung.port }],
      healthCheck: {
        probes: Array.from({ length: 8 }, (_, p) => ({
          type: "http" as const,
          name: `p${p}`,
          http: { port: "http", path: `/${p}` },
        })),
        interval: "1m",
        timeout: "55s",
        failureThreshold: 1,
      },
    });
  }
  const held = () => operator.engine.stats().inFlight;
  // One hostile run (8 probes × 16 addresses) fills the slots, and the first
  // run of each target comes at its stable phase within its 1-minute interval,
  // which the namespace name decides: the wait is bounded by the interval.
  await eventually(
    () => (held() >= SLOTS - RESERVE && hung.sockets.size >= SLOTS - RESERVE ? true : undefined),
    {
      what: `the hostile namespace to hold ${SLOTS - RESERVE} hung probes`,
      timeoutMs: 60_000 + 30_000,
    },
  );
  // Each target's first run comes at its phase within the minute; those resolved so far are capped.
  const resolved = [...operator.engine.summaries()].filter(
    (x) => x.id.startsWith(`${hostile}/`) && x.addresses.length > 0,
  );
  assert.ok(resolved.length > 0);
  for (const x of resolved) assert.equal(x.addresses.length, 16, `${x.id}: 16 of its ${HUNG} addresses`);

  // The victim's target fails while every slot the hostile namespace may take is held by a hung probe.
  const from = observations.length;
  target!.healthy = false;
  let peak = 0;
  await eventually(
    async () => {
      peak = Math.max(peak, held());
      const si = await getInstance(victim, "v");
      return si.status?.healthy === false && !(await readyAddresses(victim, "web")).includes("192.0.2.1")
        ? true
        : undefined;
    },
    { what: "the victim detected unhealthy and unpublished", timeoutMs: 30_000, intervalMs: 200 },
  );
  assert.ok(hung.sockets.size >= SLOTS - RESERVE, "the hung probes were still holding their slots");
  // The victim holds at most one slot; the rest is the hostile namespace, never more than all but the reserve.
  assert.ok(peak <= SLOTS - RESERVE + 1, `in flight ${peak}`);

  const mine = observations.filter((o) => o.id === `${victim}/v`);
  assert.ok(mine.length > 0);
  assert.deepEqual(
    mine.filter((o) => o.queued || o.voided),
    [],
    "no victim probe waited for a slot or was dropped",
  );
  const after = observations.slice(from).filter((o) => o.id === `${victim}/v`);
  assert.ok(
    after.some((o) => !o.ok && o.reason === "HTTPStatus"),
    "the victim was judged by its own probes' answers",
  );
});
