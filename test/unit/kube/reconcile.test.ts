import assert from "node:assert/strict";
import { test } from "node:test";
import { forObjects, type ReconcileContext } from "../../../src/kube/reconcile.ts";

test("forObjects reads the key's object from the cache on every call (undefined: gone)", async () => {
  const cache = new Map<string, { v: number }>([["ns/a", { v: 1 }]]);
  const seen: [string, number | undefined][] = [];
  const reconcile = forObjects(cache, (obj, rc) => {
    seen.push([rc.key, obj?.v]);
    return obj ? { requeueAfterMs: obj.v } : undefined;
  });
  const rc = (key: string) => ({ key }) as ReconcileContext;
  assert.deepEqual(await reconcile("ns/a", rc("ns/a")), { requeueAfterMs: 1 });
  cache.set("ns/a", { v: 2 });
  await reconcile("ns/a", rc("ns/a"));
  assert.equal(await reconcile("ns/b", rc("ns/b")), undefined);
  assert.deepEqual(seen, [
    ["ns/a", 1],
    ["ns/a", 2],
    ["ns/b", undefined],
  ]);
});
