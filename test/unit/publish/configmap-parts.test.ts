/**
 * The split publication (format 2): planPartedConfigMaps through the
 * ConfigMap part of the publication plan, against a small in-memory store
 * that applies the steps in the order given (as the executor does).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_PUBLISH } from "../../../src/api/index.ts";
import {
  PUBLISHED_DATA_KEY,
  PUBLISHED_STALE_ANNOTATION,
  parsePublishedEndpoints,
  serializePublishedEndpoints,
} from "../../../src/api/published.ts";
import {
  assemblePublished,
  LABEL_PUBLISHED_HEAD,
  LABEL_PUBLISHED_REVISION,
  PUBLISHED_PART_DATA_KEY,
  type PublishedHead,
  type PublishedPart,
  safeParsePublishedData,
  sha256OfText,
} from "../../../src/api/published-parts.ts";
import type { WriteStep } from "../../../src/kube/index.ts";
import type { ConfigMapObject, ServiceObject } from "../../../src/operator/context.ts";
import {
  type PublicationInput,
  planConfigMapPublication,
  planServicePublication,
} from "../../../src/operator/publish-plan.ts";
import { buildPublishedContent, type InstanceInput, planConfigMap } from "../../../src/publish/index.ts";

const NS = "shop";
const BUDGET = 2_000;
const owner = { metadata: { name: "web", namespace: NS, uid: "svc-uid" } } as ServiceObject;

function inst(i: number, over: Partial<InstanceInput> = {}): InstanceInput {
  return {
    name: `web-${String(i).padStart(3, "0")}`,
    uid: `u-${i}`,
    addresses: [`198.18.${i >> 8}.${i & 255}`],
    ports: [{ name: "http", port: 8080 }],
    verdict: "Healthy",
    metadata: { owner: "team-a", note: "x".repeat(60) },
    ...over,
  };
}

const many = (n: number) => Array.from({ length: n }, (_, i) => inst(i + 1));

/** ConfigMaps as the API server holds them; apply() runs steps in order and records it. */
function store() {
  const objects = new Map<string, ConfigMapObject>();
  const log: string[] = [];
  let rv = 0;
  const run = (steps: readonly WriteStep[]) => {
    for (const s of steps) {
      if (s.op === "delete") {
        log.push(`delete ${s.name}`);
        objects.delete(s.name);
        continue;
      }
      const body = s.body as unknown as ConfigMapObject;
      const name = body.metadata.name!;
      if (s.op === "create") assert.ok(!objects.has(name), `create of existing ${name}`);
      else assert.equal(s.body.metadata.resourceVersion, objects.get(name)?.metadata.resourceVersion);
      log.push(`${s.op} ${name}`);
      objects.set(name, {
        ...body,
        metadata: { ...body.metadata, uid: `uid-${name}`, resourceVersion: String(++rv) },
      });
    }
  };
  return { objects, log, run };
}

function input(
  s: ReturnType<typeof store>,
  instances: InstanceInput[],
  over: Partial<PublicationInput> = {},
) {
  const i: PublicationInput = {
    namespace: NS,
    service: "web",
    instances,
    servicePorts: instances.map((x) => ({ name: x.name, ports: x.ports })),
    publish: DEFAULT_PUBLISH,
    loadBalancing: { strategy: "RoundRobin" },
    configMapBudgetBytes: BUDGET,
    existing: undefined,
    slices: [],
    configMaps: [...s.objects.values()],
    configMap: s.objects.get("web-roster"),
    ...over,
  };
  return i;
}

/** Plans and writes; returns the plan and the write log of this round. */
function publish(
  s: ReturnType<typeof store>,
  instances: InstanceInput[],
  over: Partial<PublicationInput> = {},
) {
  const i = input(s, instances, over);
  const plan = planConfigMapPublication(i, planServicePublication(i).desired, owner);
  const from = s.log.length;
  s.run(plan.steps);
  if (plan.commit) s.run(plan.commit);
  return { plan, log: s.log.slice(from) };
}

/** What a reader gets from the store: the head, then its parts. */
function read(objects: ReadonlyMap<string, ConfigMapObject>) {
  const head = safeParsePublishedData(objects.get("web-roster")?.data);
  assert.ok(head.ok);
  if (head.kind === "document") return head.document;
  assert.equal(head.kind, "head");
  const assembled = assemblePublished(head.head, (name) => {
    const text = objects.get(name)?.data?.[PUBLISHED_PART_DATA_KEY];
    const part = text === undefined ? undefined : safeParsePublishedData(objects.get(name)?.data);
    return part?.ok && part.kind === "part" ? { part: part.part, text: text! } : undefined;
  });
  assert.ok(assembled.ok, JSON.stringify(assembled));
  return assembled.document;
}

function fullDocument(instances: InstanceInput[], revision: number) {
  const i = input(store(), instances);
  const content = buildPublishedContent(planServicePublication(i).desired, {
    strategy: "RoundRobin",
    zoneAware: false,
  });
  return parsePublishedEndpoints(serializePublishedEndpoints({ ...content, revision }));
}

const headOf = (s: ReturnType<typeof store>) =>
  JSON.parse(s.objects.get("web-roster")!.data![PUBLISHED_DATA_KEY]!) as PublishedHead;
const partsOf = (s: ReturnType<typeof store>) =>
  [...s.objects.values()].filter((cm) => cm.metadata.labels?.[LABEL_PUBLISHED_HEAD] === "web-roster");

describe("split publication (format 2)", () => {
  it("a small service keeps format 1, byte for byte", () => {
    const s = store();
    const instances = many(3);
    const { plan, log } = publish(s, instances);
    assert.deepEqual(log, ["create web-roster"]);
    assert.equal(plan.commit, undefined);
    const i = input(store(), instances);
    const alone = planConfigMap(
      {
        namespace: NS,
        name: "web-roster",
        content: buildPublishedContent(planServicePublication(i).desired, {
          strategy: "RoundRobin",
          zoneAware: false,
        }),
        owner: {
          apiVersion: "v1",
          kind: "Service",
          name: "web",
          uid: "svc-uid",
          controller: true,
          blockOwnerDeletion: true,
        },
      },
      BUDGET,
    );
    assert.equal(
      s.objects.get("web-roster")?.data?.[PUBLISHED_DATA_KEY],
      alone.configMap.data?.[PUBLISHED_DATA_KEY],
    );
  });

  it("over the budget: parts first in index order, then the head; bounded parts, one revision, the full set", () => {
    const s = store();
    const instances = many(40);
    const { plan, log } = publish(s, instances);
    assert.equal(plan.stale, undefined);
    const n = plan.parts!;
    assert.ok(n >= 3, `${n} parts`);
    assert.deepEqual(log, [
      ...Array.from({ length: n }, (_, i) => `create web-roster-part-${i}`),
      "create web-roster",
    ]);
    const head = headOf(s);
    assert.equal(head.formatVersion, 2);
    assert.equal(head.revision, 1);
    assert.equal(head.endpointCount, 40);
    for (const [i, ref] of head.parts.entries()) {
      const cm = s.objects.get(ref.name)!;
      const text = cm.data![PUBLISHED_PART_DATA_KEY]!;
      assert.ok(Buffer.byteLength(text) <= BUDGET, `${ref.name}: ${Buffer.byteLength(text)} bytes`);
      assert.equal(sha256OfText(text), ref.sha256);
      const part = JSON.parse(text) as PublishedPart;
      assert.equal(part.revision, head.revision);
      assert.equal(part.index, i);
      assert.equal(cm.metadata.labels?.[LABEL_PUBLISHED_REVISION], "1");
      assert.equal(cm.metadata.ownerReferences?.[0]?.uid, "svc-uid");
      assert.equal(cm.data?.[PUBLISHED_DATA_KEY], undefined, "format-1 readers do not see parts");
    }
    assert.deepEqual(read(s.objects), fullDocument(instances, 1));
  });

  it("is deterministic: the same set in another order gives the same writes; unchanged writes nothing", () => {
    const a = store();
    const b = store();
    const instances = many(40);
    publish(a, instances);
    publish(b, [...instances].reverse());
    assert.deepEqual([...a.objects.keys()].sort(), [...b.objects.keys()].sort());
    for (const [name, cm] of a.objects) assert.deepEqual(cm.data, b.objects.get(name)?.data, name);
    const again = publish(a, instances);
    assert.deepEqual(again.log, []);
    assert.equal(again.plan.revision, 1);
  });

  it("a change moves every part and the head to the next revision, head last", () => {
    const s = store();
    const instances = many(40);
    publish(s, instances);
    const n = partsOf(s).length;
    const changed = instances.map((x, i) => (i === 39 ? { ...x, verdict: "Unhealthy" as const } : x));
    const { plan, log } = publish(s, changed);
    assert.equal(plan.revision, 2);
    assert.deepEqual(log, [
      ...Array.from({ length: n }, (_, i) => `apply web-roster-part-${i}`),
      "apply web-roster",
    ]);
    assert.deepEqual(read(s.objects), fullDocument(changed, 2));
  });

  it("parts the head no longer lists are deleted only after the head moved", () => {
    const s = store();
    publish(s, many(40));
    const before = partsOf(s).length;
    const { plan, log } = publish(s, many(20));
    const after = plan.parts!;
    assert.ok(after < before);
    const headAt = log.indexOf("apply web-roster");
    assert.ok(headAt >= 0);
    const deletes = log.filter((l) => l.startsWith("delete"));
    assert.deepEqual(
      deletes,
      Array.from({ length: before - after }, (_, i) => `delete web-roster-part-${after + i}`),
    );
    for (const d of deletes) assert.ok(log.indexOf(d) > headAt, `${d} after the head`);
    assert.deepEqual(read(s.objects), fullDocument(many(20), 2));
  });

  it("back under the budget: format 1 at the next revision, then the parts are deleted", () => {
    const s = store();
    publish(s, many(40));
    const n = partsOf(s).length;
    const { plan, log } = publish(s, many(2));
    assert.equal(plan.revision, 2);
    assert.deepEqual(log, [
      "apply web-roster",
      ...Array.from({ length: n }, (_, i) => `delete web-roster-part-${i}`),
    ]);
    assert.deepEqual(read(s.objects), fullDocument(many(2), 2));
    // And over again: the revision keeps going up.
    assert.equal(publish(s, many(40)).plan.revision, 3);
    assert.equal(headOf(s).revision, 3);
  });

  it("over the most parts (or with configMapMaxParts 1): the stale format-1 document, as before", () => {
    const s = store();
    const { plan, log } = publish(s, many(40), { configMapMaxParts: 1 });
    assert.match(plan.stale ?? "", /over the 2000-byte budget/);
    assert.deepEqual(log, ["create web-roster"]);
    assert.equal(
      s.objects.get("web-roster")?.metadata.annotations?.[PUBLISHED_STALE_ANNOTATION],
      "OverBudget",
    );
    // Then split: the stale marker is cleared, the revision moves on.
    const split = publish(s, many(40));
    assert.equal(split.plan.stale, undefined);
    assert.equal(split.plan.revision, 2);
    assert.equal(s.objects.get("web-roster")?.metadata.annotations?.[PUBLISHED_STALE_ANNOTATION], "");
    assert.deepEqual(read(s.objects), fullDocument(many(40), 2));
    const tooMany = publish(store(), many(40), { configMapMaxParts: 2 });
    assert.ok(tooMany.plan.stale);
  });

  it("a torn set is never assembled: a part of another revision, or missing", () => {
    const s = store();
    publish(s, many(40));
    const old = new Map(s.objects);
    publish(
      s,
      many(40).map((x, i) => (i === 0 ? { ...x, verdict: "Unhealthy" as const } : x)),
    );
    // The reader holds the head of revision 2 with part 0 still of revision 1.
    const torn = new Map(s.objects);
    torn.set("web-roster-part-0", old.get("web-roster-part-0")!);
    const head = safeParsePublishedData(torn.get("web-roster")!.data);
    assert.ok(head.ok && head.kind === "head");
    const partOf = (m: Map<string, ConfigMapObject>) => (name: string) => {
      const p = m.get(name) && safeParsePublishedData(m.get(name)!.data);
      return p?.ok && p.kind === "part" ? { part: p.part, text: p.text } : undefined;
    };
    const r = assemblePublished(head.head, partOf(torn));
    assert.ok(!r.ok && r.torn, JSON.stringify(r));
    torn.delete("web-roster-part-1");
    const missing = assemblePublished(head.head, partOf(torn));
    assert.ok(!missing.ok && missing.torn);
  });

  it("disabled: the head and every part are deleted", () => {
    const s = store();
    publish(s, many(40));
    publish(s, many(40), {
      publish: { ...DEFAULT_PUBLISH, configMap: { ...DEFAULT_PUBLISH.configMap, enabled: false } },
    });
    assert.deepEqual([...s.objects.keys()], []);
  });
});
