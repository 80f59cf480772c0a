// The /metrics authorizer's decisions and its cache, against a scripted API
// server (the real TokenReview/SubjectAccessReview round trip is
// test/integration/kube/metrics-auth.test.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { KubeRequest } from "../../../src/kube/client.ts";
import { kubernetesMetricsAuthorizer } from "../../../src/kube/metrics-auth.ts";
import { fakeClock } from "../../../src/util/clock.ts";
import { scriptedClient } from "./fakes.ts";

/** Tokens `user-<name>` authenticate as `<name>`; `<name>` starting with `reader` may get /metrics. */
function apiServer(opts: { down?: () => boolean } = {}) {
  return scriptedClient({
    onRequest: (req: KubeRequest) => {
      if (opts.down?.()) throw new Error("connect ECONNREFUSED");
      const body = req.body as { spec: { token?: string; user?: string; nonResourceAttributes?: unknown } };
      if (req.path.endsWith("/tokenreviews")) {
        const t = body.spec.token ?? "";
        return t.startsWith("user-")
          ? { status: { authenticated: true, user: { username: t.slice(5), groups: ["g"] } } }
          : { status: { authenticated: false, error: "invalid bearer token" } };
      }
      assert.deepEqual(body.spec.nonResourceAttributes, { path: "/metrics", verb: "get" });
      return { status: { allowed: body.spec.user?.startsWith("reader") ?? false } };
    },
  });
}

describe("kubernetes /metrics authorizer", () => {
  test("no token or an unknown one: 401; a user without the permission: 403; a reader: allowed", async () => {
    const client = apiServer();
    const auth = kubernetesMetricsAuthorizer({ client, clock: fakeClock() });
    assert.equal((await auth(undefined))?.status, 401);
    assert.equal((await auth("Basic dXNlcjpwdw=="))?.status, 401);
    assert.equal((await auth("Bearer nonsense"))?.status, 401);
    const denied = await auth("Bearer user-eve");
    assert.equal(denied?.status, 403);
    assert.match(denied!.message, /user=eve/);
    assert.equal(await auth("Bearer user-reader"), undefined);
    const sar = client.requests.find((r) => r.path.endsWith("/subjectaccessreviews"));
    assert.deepEqual((sar!.body as { spec: { groups: string[] } }).spec.groups, ["g"]);
  });

  test("decisions are cached for their TTL, concurrent scrapes share one review", async () => {
    const clock = fakeClock();
    const client = apiServer();
    const auth = kubernetesMetricsAuthorizer({ client, clock, allowTtlMs: 60_000, denyTtlMs: 10_000 });
    await Promise.all([auth("Bearer user-reader"), auth("Bearer user-reader"), auth("Bearer user-reader")]);
    assert.equal(client.requests.length, 2, "one TokenReview and one SubjectAccessReview");
    clock.advance(59_000);
    assert.equal(await auth("Bearer user-reader"), undefined);
    assert.equal(client.requests.length, 2, "still cached");
    clock.advance(2_000);
    await auth("Bearer user-reader");
    assert.equal(client.requests.length, 4, "reviewed again after the TTL");

    await auth("Bearer user-eve");
    clock.advance(9_000);
    await auth("Bearer user-eve");
    assert.equal(client.requests.length, 6, "a denial is cached for denyTtl");
    clock.advance(2_000);
    await auth("Bearer user-eve");
    assert.equal(client.requests.length, 8);
  });

  test("a failed review answers 500 and is not cached", async () => {
    let down = true;
    const client = apiServer({ down: () => down });
    const auth = kubernetesMetricsAuthorizer({ client, clock: fakeClock() });
    assert.equal((await auth("Bearer user-reader"))?.status, 500);
    down = false;
    assert.equal(await auth("Bearer user-reader"), undefined);
  });

  test("the cache is bounded: the oldest tokens are evicted first", async () => {
    const client = apiServer();
    const auth = kubernetesMetricsAuthorizer({ client, clock: fakeClock(), maxEntries: 3 });
    for (const t of ["a", "b", "c", "d"]) await auth(`Bearer user-reader-${t}`);
    const before = client.requests.length;
    await auth("Bearer user-reader-d");
    await auth("Bearer user-reader-b");
    assert.equal(client.requests.length, before, "b and d are still cached");
    await auth("Bearer user-reader-a");
    assert.equal(client.requests.length, before + 2, "a was evicted: reviewed again");
  });
});
