import assert from "node:assert/strict";
import { test } from "node:test";
import type { EventHandler, Informer } from "../../../src/kube/informer.ts";
import type { KubeObject } from "../../../src/kube/object.ts";
import { writeTracker } from "../../../src/kube/tracker.ts";
import { fakeClock } from "../../../src/util/clock.ts";

/** Just enough of an informer to deliver events to the tracker. */
function events() {
  const handlers = new Set<EventHandler<KubeObject>>();
  const cached = new Map<string, KubeObject>();
  const informer = {
    get: (key: string) => cached.get(key),
    addHandler(h: EventHandler<KubeObject>) {
      handlers.add(h);
      return () => handlers.delete(h);
    },
  } as unknown as Informer<KubeObject>;
  const obj = (name: string, rv: string): KubeObject => ({
    metadata: { namespace: "ns", name, resourceVersion: rv },
  });
  return {
    informer,
    cache: (name: string, rv: string) => cached.set(`ns/${name}`, obj(name, rv)),
    update: (name: string, rv: string) => {
      for (const h of handlers) h.onUpdate?.(obj(name, "0"), obj(name, rv));
    },
    add: (name: string, rv: string) => {
      for (const h of handlers) h.onAdd?.(obj(name, rv), false);
    },
    remove: (name: string, rv: string) => {
      for (const h of handlers) h.onDelete?.(obj(name, rv), false);
    },
    obj,
  };
}

test("a group is behind until the cache shows each write's version", () => {
  const clock = fakeClock(1000);
  const t = writeTracker(clock);
  const e = events();
  t.observe(e.informer);
  assert.equal(t.behind("ns/web"), false);
  t.wrote("ns/web", e.obj("web-1", "10"));
  t.wrote("ns/web", e.obj("web-2", "11"));
  t.deleted("ns/web", "ns/web-3");
  assert.equal(t.behind("ns/web"), true);
  assert.equal(t.behind("ns/api"), false, "other groups are not affected");
  e.update("web-1", "9"); // an older version: still behind
  e.add("web-2", "11");
  e.update("web-1", "10");
  assert.equal(t.behind("ns/web"), true, "the delete is not seen yet");
  e.remove("web-3", "12");
  assert.equal(t.behind("ns/web"), false);
});

test("a later write replaces an earlier one; entries expire so a lost event cannot block forever", () => {
  const clock = fakeClock(0);
  const t = writeTracker(clock, 2000);
  const e = events();
  t.observe(e.informer);
  t.wrote("ns/web", e.obj("web-1", "10"));
  t.wrote("ns/web", e.obj("web-1", "12"));
  e.update("web-1", "10");
  assert.equal(t.behind("ns/web"), true, "waits for the latest write");
  e.update("web-1", "12");
  assert.equal(t.behind("ns/web"), false);
  t.wrote("ns/web", e.obj("web-1", "13"));
  clock.advance(1999);
  assert.equal(t.behind("ns/web"), true);
  clock.advance(1);
  assert.equal(t.behind("ns/web"), false, "a relist may skip the exact version");
});

test("a write the cache already shows (an apply that changed nothing) is not pending", () => {
  const t = writeTracker(fakeClock(0));
  const e = events();
  t.observe(e.informer);
  e.cache("web-1", "10");
  t.wrote("ns/web", e.obj("web-1", "10"));
  assert.equal(t.behind("ns/web"), false);
  t.wrote("ns/web", e.obj("web-1", "11"));
  assert.equal(t.behind("ns/web"), true);
});

test("written() serves the write while the cache shows the version it replaced, never after the cache moved", () => {
  const t = writeTracker(fakeClock(0));
  const e = events();
  t.observe(e.informer);
  e.cache("si", "5");
  const mine = e.obj("si", "6");
  t.wrote("ns/si", mine, "5");
  assert.equal(t.written("ns/si"), mine);
  e.cache("si", "6");
  e.update("si", "6");
  assert.equal(t.written("ns/si"), undefined, "the cache shows it: the cache is the truth");

  // The cache moved on to another version (a relist skipped ours): the cache wins.
  t.wrote("ns/si", e.obj("si", "8"), "6");
  assert.ok(t.written("ns/si"));
  e.cache("si", "9");
  assert.equal(t.written("ns/si"), undefined);

  // A write computed from a version the cache no longer shows is not recorded.
  t.wrote("ns/si", e.obj("si", "10"), "7");
  assert.equal(t.written("ns/si"), undefined);
  assert.equal(t.behind("ns/si"), false);
});

test("a delete event settles any pending write to the key", () => {
  const t = writeTracker(fakeClock(0));
  const e = events();
  t.observe(e.informer);
  t.wrote("ns/web", e.obj("web-1", "10"));
  e.remove("web-1", "9");
  assert.equal(t.behind("ns/web"), false);
});
