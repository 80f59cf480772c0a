// A policy whose probe expects the primary publishes only the current primary
// of a replicated database, and follows a failover within detection time:
// real PostgreSQL 15 (a primary and a streaming replica) and real Redis (a
// primary and a replica) on loopback, probed through the operator with the
// password from a Secret, published in the service's ConfigMap on the real sandbox.
// The same holds for a policy with spec.publish.role: primary and probes
// without expectRole (both members healthy, status.role primary / replica).
import { test } from "node:test";
import { Redis } from "ioredis";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { postgresCluster, redisServer, skipWithoutDatabases } from "../../support/databases.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  createInstance,
  createPolicy,
  createSecret,
  getInstance,
  publishedDocument,
} from "../../support/roster.ts";

const skip = skipWithoutDatabases();
const CHECK = { interval: "1s", timeout: "900ms", failureThreshold: 1, successThreshold: 1, jitter: 0 };

/**
 * Waits until exactly these instances are ready in the service's published
 * ConfigMap (loopback addresses cannot be in EndpointSlices, so the ConfigMap
 * is where these are published).
 */
function published(ns: string, service: string, expected: string[]) {
  return eventually(
    async () => {
      const doc = await publishedDocument(ns, `${service}-roster`);
      const ready = (doc?.endpoints ?? []).filter((e) => e.ready).map((e) => e.instance);
      return JSON.stringify(ready.sort()) === JSON.stringify(expected) ? ready : undefined;
    },
    { timeoutMs: 30_000, what: `${service} ready instances ${JSON.stringify(expected)}` },
  );
}

test("postgres: only the primary is published; after promote + stop the new primary is", {
  skip,
}, async (t) => {
  const ns = await testNamespace(t, "pg-role");
  const pg = await postgresCluster(t, { replica: true, primaryHost: "127.0.0.1", replicaHost: "127.0.0.2" });
  await startTestOperator(t, { namespaces: [ns] });
  await createSecret(ns, "orders-db-probe", { password: pg.password });
  await createPolicy(ns, "orders-db", {
    service: "orders-db",
    healthCheck: {
      probes: [
        {
          type: "postgres",
          postgres: {
            user: pg.user,
            passwordFrom: { secretKeyRef: { name: "orders-db-probe", key: "password" } },
            expectRole: "primary",
          },
        },
      ],
      ...CHECK,
    },
  });
  await createInstance(ns, "db-a", {
    service: "orders-db",
    address: "127.0.0.1",
    ports: [{ name: "pg", port: pg.primary.port }],
  });
  await createInstance(ns, "db-b", {
    service: "orders-db",
    address: "127.0.0.2",
    ports: [{ name: "pg", port: pg.replica!.port }],
  });
  await published(ns, "orders-db", ["db-a"]);
  pg.replica!.promote();
  pg.primary.stop();
  await published(ns, "orders-db", ["db-b"]);
});

test("redis: only the primary is published; after REPLICAOF NO ONE + stop the new primary is", {
  skip,
}, async (t) => {
  const ns = await testNamespace(t, "redis-role");
  const primary = await redisServer(t, { password: "secret", host: "127.0.0.1" });
  const replica = await redisServer(t, {
    password: "secret",
    host: "127.0.0.2",
    replicaOf: { host: "127.0.0.1", port: primary.port },
  });
  await startTestOperator(t, { namespaces: [ns] });
  await createSecret(ns, "cache-probe", { password: "secret" });
  await createPolicy(ns, "cache", {
    service: "cache",
    healthCheck: {
      probes: [
        {
          type: "redis",
          redis: {
            passwordFrom: { secretKeyRef: { name: "cache-probe", key: "password" } },
            expectRole: "primary",
          },
        },
      ],
      ...CHECK,
    },
  });
  await createInstance(ns, "cache-a", {
    service: "cache",
    address: "127.0.0.1",
    ports: [{ name: "redis", port: primary.port }],
  });
  await createInstance(ns, "cache-b", {
    service: "cache",
    address: "127.0.0.2",
    ports: [{ name: "redis", port: replica.port }],
  });
  await published(ns, "cache", ["cache-a"]);
  const admin = new Redis({ host: "127.0.0.2", port: replica.port, password: "secret", lazyConnect: true });
  t.after(() => admin.disconnect());
  await admin.connect();
  await admin.call("REPLICAOF", "NO", "ONE");
  await primary.stop();
  await published(ns, "cache", ["cache-b"]);
});

/**
 * Waits until the service's ConfigMap lists exactly these instances (ready or
 * not) with these roles, and each instance's status.role is as given
 * (undefined: absent).
 */
function publishedRoles(
  ns: string,
  service: string,
  endpoints: Record<string, "primary" | "replica">,
  statusRoles: Record<string, "primary" | "replica" | undefined>,
) {
  const want = JSON.stringify(Object.entries(endpoints).sort());
  return eventually(
    async () => {
      const doc = await publishedDocument(ns, `${service}-roster`);
      const listed = (doc?.endpoints ?? []).map((e) => [e.instance, e.ready ? e.role : "not-ready"]);
      if (JSON.stringify(listed.sort()) !== want) return undefined;
      for (const [name, role] of Object.entries(statusRoles)) {
        if ((await getInstance(ns, name)).status?.role !== role) return undefined;
      }
      return doc;
    },
    {
      timeoutMs: 30_000,
      what: `${service} published ${want}, status roles ${JSON.stringify(statusRoles)}`,
    },
  );
}

test("postgres: publish.role primary (no expectRole) publishes only the primary and follows promote + stop", {
  skip,
}, async (t) => {
  const ns = await testNamespace(t, "pg-pubrole");
  const pg = await postgresCluster(t, { replica: true, primaryHost: "127.0.0.1", replicaHost: "127.0.0.2" });
  await startTestOperator(t, { namespaces: [ns] });
  await createSecret(ns, "orders-db-probe", { password: pg.password });
  await createPolicy(ns, "orders-db", {
    service: "orders-db",
    publish: { role: "primary" },
    healthCheck: {
      probes: [
        {
          type: "postgres",
          postgres: {
            user: pg.user,
            passwordFrom: { secretKeyRef: { name: "orders-db-probe", key: "password" } },
          },
        },
      ],
      ...CHECK,
    },
  });
  await createInstance(ns, "db-a", {
    service: "orders-db",
    address: "127.0.0.1",
    ports: [{ name: "pg", port: pg.primary.port }],
  });
  await createInstance(ns, "db-b", {
    service: "orders-db",
    address: "127.0.0.2",
    ports: [{ name: "pg", port: pg.replica!.port }],
  });
  // Both are healthy (no expectRole); the replica is left out of publication
  // by the policy, not listed as not ready.
  await publishedRoles(ns, "orders-db", { "db-a": "primary" }, { "db-a": "primary", "db-b": "replica" });
  pg.replica!.promote();
  pg.primary.stop();
  // The stopped server's probe fails: its role is unknown, so it is left out.
  await publishedRoles(ns, "orders-db", { "db-b": "primary" }, { "db-a": undefined, "db-b": "primary" });
});

test("redis: publish.role primary (no expectRole) publishes only the primary and follows REPLICAOF NO ONE + stop", {
  skip,
}, async (t) => {
  const ns = await testNamespace(t, "redis-pubrole");
  const primary = await redisServer(t, { password: "secret", host: "127.0.0.1" });
  const replica = await redisServer(t, {
    password: "secret",
    host: "127.0.0.2",
    replicaOf: { host: "127.0.0.1", port: primary.port },
  });
  await startTestOperator(t, { namespaces: [ns] });
  await createSecret(ns, "cache-probe", { password: "secret" });
  await createPolicy(ns, "cache", {
    service: "cache",
    publish: { role: "primary" },
    healthCheck: {
      probes: [
        {
          type: "redis",
          redis: { passwordFrom: { secretKeyRef: { name: "cache-probe", key: "password" } } },
        },
      ],
      ...CHECK,
    },
  });
  await createInstance(ns, "cache-a", {
    service: "cache",
    address: "127.0.0.1",
    ports: [{ name: "redis", port: primary.port }],
  });
  await createInstance(ns, "cache-b", {
    service: "cache",
    address: "127.0.0.2",
    ports: [{ name: "redis", port: replica.port }],
  });
  await publishedRoles(ns, "cache", { "cache-a": "primary" }, { "cache-a": "primary", "cache-b": "replica" });
  const admin = new Redis({ host: "127.0.0.2", port: replica.port, password: "secret", lazyConnect: true });
  t.after(() => admin.disconnect());
  await admin.connect();
  await admin.call("REPLICAOF", "NO", "ONE");
  await primary.stop();
  await publishedRoles(ns, "cache", { "cache-b": "primary" }, { "cache-a": undefined, "cache-b": "primary" });
});
