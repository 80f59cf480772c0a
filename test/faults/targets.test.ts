// Misbehaving targets, probed by the real operator:
// - 90 % of a service's instances fail at once: panic engages (threshold 50)
//   and every instance stays published;
// - a server that accepts and never answers, a slowloris that trickles a
//   response head forever, a server that accepts and resets, one that sends
//   an endless body and one that sends a 1 MiB response head: each is judged
//   unhealthy with its reason (Timeout, Timeout, ConnectionReset,
//   BodyMismatch, ProtocolError) while the healthy instances of the same
//   roster stay healthy and are probed on schedule, and this process's open
//   file descriptors and memory do not grow across many probe rounds.
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { test } from "node:test";
import type { ServiceInstanceInput } from "../../src/api/index.ts";
import { eventually, testNamespace } from "../support/cluster.ts";
import { FAST, INTERVAL_MS, MARGIN_MS, webInstance } from "../support/instances.ts";
import { startTestOperator } from "../support/operator.ts";
import {
  condition,
  createInstance,
  createPolicy,
  getInstance,
  getPolicy,
  publishedDocument,
  readyAddresses,
  watchSlices,
} from "../support/roster.ts";
import { httpTargets, setHealthy } from "../support/targets.ts";
import { openFds, sleep } from "./support.ts";

test("90 % of instances fail at once: panic engages and all stay published", async (t) => {
  const ns = await testNamespace(t, "mass");
  const targets = await httpTargets(t, 10);
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web", publish: { panicThreshold: 50 } });
  for (const [i, target] of targets.entries())
    await createInstance(ns, `web-${i + 1}`, webInstance(target, i));
  const all = targets.map((_, i) => `192.0.2.${i + 1}`).sort();
  await eventually(async () => ((await readyAddresses(ns, "web")).join() === all.join() ? true : undefined), {
    timeoutMs: 20_000,
    what: "ten ready endpoints",
  });

  const watch = await watchSlices(ns, "web");
  setHealthy(targets.slice(1), false);
  await eventually(
    async () => {
      const p = await getPolicy(ns, "web");
      return p.status?.panic === true && condition(p, "Panic")?.status === "True" ? true : undefined;
    },
    { timeoutMs: 2 * INTERVAL_MS + MARGIN_MS + 2000, what: "panic on the policy" },
  );
  // The ConfigMap follows once all nine failures are recorded (they land within about one interval).
  const doc = await eventually(
    async () => {
      const d = await publishedDocument(ns, "web-roster");
      return d?.panic && d.endpoints.filter((e) => e.healthy).length === 1 ? d : undefined;
    },
    { timeoutMs: 2 * INTERVAL_MS + MARGIN_MS, what: "ConfigMap with panic and one healthy endpoint" },
  );
  assert.equal(doc.endpoints.filter((e) => e.ready).length, 10, "fail open in the ConfigMap");
  assert.deepEqual(await readyAddresses(ns, "web"), all, "fail open: every instance stays ready");
  watch.stop();
  // Informational: the nine failures are recorded probe by probe, so the set may shrink
  // (while more than half are still healthy) before panic puts everything back.
  const smallest = Math.min(...watch.events.map((e) => e.ready.length));
  t.diagnostic(
    `slice events during the mass failure: ${watch.events.length}, smallest ready set: ${smallest}`,
  );

  setHealthy(targets, true);
  // Panic ends as soon as half are healthy again; the rest follow within an interval.
  await eventually(
    async () =>
      (await getPolicy(ns, "web")).status?.panic === false &&
      (await readyAddresses(ns, "web")).join() === all.join()
        ? true
        : undefined,
    { timeoutMs: INTERVAL_MS + MARGIN_MS + 2000, what: "panic to end with every instance ready" },
  );
});

interface Bad {
  server: Server;
  port: number;
  connections: number;
}

async function badServer(host: string, onSocket: (s: Socket) => void): Promise<Bad> {
  const sockets = new Set<Socket>();
  const bad: Bad = { server: createServer(), port: 0, connections: 0 };
  bad.server.on("connection", (s) => {
    bad.connections++;
    sockets.add(s);
    s.on("error", () => undefined);
    s.on("close", () => sockets.delete(s));
    onSocket(s);
  });
  await new Promise<void>((r) => bad.server.listen(0, host, r));
  bad.port = (bad.server.address() as { port: number }).port;
  const close = bad.server.close.bind(bad.server);
  bad.server.close = (cb) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  };
  return bad;
}

test("hung, slowloris and resetting servers time out; the rest of the roster keeps its schedule; FDs bounded", async (t) => {
  const ns = await testNamespace(t, "hostile");
  const good = await httpTargets(t, 3, 20);
  // Accepts, reads, never answers; closes its side only when the prober does.
  const hung = await badServer("127.0.0.30", (s) => {
    s.resume();
    s.on("end", () => s.destroy());
  });
  // Trickles a response head, one byte every 100 ms, forever.
  const slow = await badServer("127.0.0.31", (s) => {
    const head = "HTTP/1.1 200 OK\r\nX-Slow: ";
    let i = 0;
    const timer = setInterval(() => {
      if (!s.writable) return clearInterval(timer);
      s.write(i < head.length ? head[i]! : "a");
      i++;
    }, 100);
    s.on("close", () => clearInterval(timer));
    s.on("end", () => s.destroy());
  });
  // Accepts and resets at once.
  const rst = await badServer("127.0.0.32", (s) => s.resetAndDestroy());
  // Answers 200 with an endless body (the probe wants a substring that never comes).
  const huge = await badServer("127.0.0.33", (s) => {
    s.once("data", () => {
      s.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
      const chunk = Buffer.alloc(64 * 1024, "x");
      const pump = () => {
        while (s.writable && s.write(chunk)) {}
      };
      s.on("drain", pump);
      pump();
    });
    s.on("end", () => s.destroy());
  });
  // A response head that never ends: 1 MiB of headers at once.
  const head = await badServer("127.0.0.34", (s) => {
    s.once("data", () => {
      s.write(`HTTP/1.1 200 OK\r\n${"X-Big: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(28_000)}`);
    });
    s.on("end", () => s.destroy());
  });
  const bad = { hung, slow, rst, huge, head };
  t.after(() => Promise.all(Object.values(bad).map((b) => new Promise((r) => b.server.close(r)))));

  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web" });
  for (const [i, target] of good.entries()) await createInstance(ns, `good-${i + 1}`, webInstance(target, i));
  const badSpec = (host: string, port: number, n: number): ServiceInstanceInput["spec"] => ({
    service: "web",
    address: `192.0.2.${n}`,
    ports: [{ name: "http", port }],
    healthCheck: { probes: [{ type: "http", http: { host, port: "http", path: "/healthz" } }], ...FAST },
  });
  await createInstance(ns, "hung", badSpec("127.0.0.30", hung.port, 30));
  await createInstance(ns, "slow", badSpec("127.0.0.31", slow.port, 31));
  await createInstance(ns, "rst", badSpec("127.0.0.32", rst.port, 32));
  const hugeSpec = badSpec("127.0.0.33", huge.port, 33);
  await createInstance(ns, "huge", {
    ...hugeSpec,
    healthCheck: {
      probes: [
        {
          type: "http",
          http: {
            host: "127.0.0.33",
            port: "http",
            path: "/healthz",
            bodyMatch: { substring: "never-there" },
          },
        },
      ],
      ...FAST,
    },
  });
  await createInstance(ns, "head", badSpec("127.0.0.34", head.port, 34));

  // A body without the substring is a mismatch once the match window is read (never buffered
  // further); a head beyond 16 KiB is a protocol error.
  const expected: Record<string, string> = {
    hung: "Timeout",
    slow: "Timeout",
    rst: "ConnectionReset",
    huge: "BodyMismatch",
    head: "ProtocolError",
  };
  await eventually(
    async () => {
      for (const [name, reason] of Object.entries(expected)) {
        const si = await getInstance(ns, name);
        if (si.status?.healthy !== false || condition(si, "Healthy")?.reason !== reason) return undefined;
      }
      return (await readyAddresses(ns, "web")).join() === "192.0.2.1,192.0.2.2,192.0.2.3" ? true : undefined;
    },
    {
      timeoutMs: 20_000,
      intervalMs: 200,
      what: "bad servers unhealthy with their reasons, good ones published",
    },
  );

  // Many probe rounds: the good ones are probed every interval; FDs and memory do not grow.
  const hitsBefore = good.map((g) => g.hits);
  const connsBefore = Object.values(bad).map((b) => b.connections);
  const windowMs = 12_000;
  const segmentMax = [0, 0, 0];
  const rss0 = process.memoryUsage().rss;
  for (let waited = 0; waited < windowMs; waited += 250) {
    await sleep(250);
    const seg = Math.min(2, Math.floor((waited / windowMs) * 3));
    segmentMax[seg] = Math.max(segmentMax[seg]!, openFds());
  }
  const rss1 = process.memoryUsage().rss;
  const rounds = windowMs / INTERVAL_MS;
  for (const [i, g] of good.entries()) {
    const hits = g.hits - hitsBefore[i]!;
    // Jitter 0 and 1 s interval: 12 probes expected; lateness of a probe round would show as fewer.
    assert.ok(
      hits >= rounds - 2 && hits <= rounds + 2,
      `good-${i + 1} probed on schedule (${hits} in ${rounds} s)`,
    );
  }
  for (const [i, b] of Object.values(bad).entries()) {
    const conns = b.connections - connsBefore[i]!;
    // One probe per interval; a probe that overran its slot is skipped, never stacked.
    assert.ok(conns >= 4 && conns <= rounds + 2, `${Object.keys(bad)[i]} probed ${conns} times`);
  }
  t.diagnostic(`max fds per 4 s segment: ${segmentMax.join(", ")}; rss ${rss0 >> 20} -> ${rss1 >> 20} MiB`);
  // No growth across rounds (every in-flight probe to a hung server holds 2 fds here: both ends
  // live in this process), and no 64 MiB of endless body buffered anywhere.
  assert.ok(segmentMax[2]! <= segmentMax[0]! + 8, `fds bounded (${segmentMax.join(", ")})`);
  assert.ok(rss1 - rss0 < 64 * 1024 * 1024, `rss bounded (${rss0 >> 20} -> ${rss1 >> 20} MiB)`);
  for (const name of ["good-1", "good-2", "good-3"]) {
    const si = await getInstance(ns, name);
    assert.equal(si.status?.healthy, true, `${name} stayed healthy`);
  }
});
