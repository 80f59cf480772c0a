import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { WRITE_CLASSES, type WriteClass, writeClassOf, writeGate } from "../../../src/kube/writegate.ts";

const flush = () => new Promise<void>((r) => setImmediate(r));

type Op = { kind: "submit"; cls: WriteClass; fail: boolean } | { kind: "finish"; pick: number };

const ops = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant("submit" as const),
      cls: fc.constantFrom(...WRITE_CLASSES),
      fail: fc.boolean(),
    }),
    fc.record({ kind: fc.constant("finish" as const), pick: fc.nat() }),
  ),
  { maxLength: 60 },
);

test("write gate: bounded in-flight, strict priority across classes, FIFO within one", async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 4 }), ops, async (limit, script: Op[]) => {
      const gate = writeGate({ limit, now: () => 0 });
      const startedOrder: number[] = [];
      const running = new Map<number, { ok: () => void; fail: () => void }>();
      // Reference model: waiting ids per class.
      const model = new Map<WriteClass, number[]>(WRITE_CLASSES.map((c) => [c, []]));
      const expected: number[] = [];
      let modelInFlight = 0;
      const modelNext = () => {
        while (modelInFlight < limit) {
          const c = WRITE_CLASSES.find((k) => model.get(k)!.length > 0);
          if (!c) return;
          expected.push(model.get(c)!.shift()!);
          modelInFlight++;
        }
      };
      const settled: Promise<unknown>[] = [];
      let id = 0;
      for (const op of script) {
        if (op.kind === "submit") {
          const me = id++;
          model.get(op.cls)!.push(me);
          modelNext();
          settled.push(
            gate
              .run(op.cls, () => {
                startedOrder.push(me);
                return new Promise<void>((ok, fail) => {
                  running.set(me, { ok, fail: () => fail(new Error("boom")) });
                });
              })
              .catch(() => undefined),
          );
        } else {
          const ids = [...running.keys()];
          if (ids.length === 0) continue;
          const victim = ids[op.pick % ids.length]!;
          const r = running.get(victim)!;
          running.delete(victim);
          // A failing write frees its slot too.
          if (op.pick % 2) r.fail();
          else r.ok();
          modelInFlight--;
          modelNext();
        }
        await flush();
        assert.ok(gate.stats().inFlight <= limit);
        assert.equal(gate.stats().inFlight, running.size);
        assert.deepEqual(startedOrder, expected);
      }
      // Drain: everything submitted is eventually started (no starvation once load is finite).
      while (running.size > 0) {
        for (const [k, r] of [...running]) {
          running.delete(k);
          r.ok();
        }
        await flush();
      }
      await Promise.all(settled);
      assert.equal(startedOrder.length, id);
    }),
    { numRuns: 200 },
  );
});

test("write gate: a waiting slice write gets the next slot before any number of queued statuses", async () => {
  const gate = writeGate({ limit: 1 });
  const order: string[] = [];
  let release!: () => void;
  const first = gate.run("status", () => new Promise<void>((r) => (release = r)));
  const storm = Array.from({ length: 100 }, (_, i) =>
    gate.run("status", async () => void order.push(`s${i}`)),
  );
  const slice = gate.run("publication", async () => void order.push("slice"));
  const event = gate.run("event", async () => void order.push("event"));
  assert.deepEqual(gate.stats().queued, { publication: 1, configmap: 0, status: 100, event: 1 });
  release();
  await Promise.all([first, ...storm, slice, event]);
  assert.equal(order[0], "slice");
  assert.equal(order.at(-1), "event");
  assert.deepEqual(
    order.slice(1, 101),
    Array.from({ length: 100 }, (_, i) => `s${i}`),
  );
});

test("writeClassOf: one place decides the class of a request", () => {
  assert.equal(writeClassOf("GET", "/api/v1/namespaces/a/services/x"), undefined);
  assert.equal(writeClassOf("PATCH", "/api/v1/namespaces/a/services/x"), "publication");
  assert.equal(writeClassOf("PUT", "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/x"), "publication");
  assert.equal(writeClassOf("POST", "/api/v1/namespaces/a/configmaps"), "configmap");
  assert.equal(
    writeClassOf("PATCH", "/apis/roster.dev/v1alpha1/namespaces/a/serviceinstances/x/status"),
    "status",
  );
  assert.equal(writeClassOf("POST", "/apis/events.k8s.io/v1/namespaces/a/events"), "event");
  assert.equal(writeClassOf("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l"), undefined);
  assert.equal(writeClassOf("POST", "/apis/authentication.k8s.io/v1/tokenreviews"), undefined);
  assert.equal(writeClassOf("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews"), undefined);
});
