import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, parseConfig } from "../../../src/config/load.ts";
import {
  type ClientIdentity,
  parseSubjectAltName,
  readableNamespaces,
  type XdsAccessRule,
} from "../../../src/xds/access.ts";

const spiffeA = "spiffe://example.org/ns/a/sa/client";
const spiffeB = "spiffe://example.org/ns/b/sa/client";
const id = (nodeId: string, uris?: string[], dnsNames: string[] = []): ClientIdentity => ({
  nodeId,
  peer: uris === undefined ? undefined : { uris, dnsNames },
});
const names = (rules: readonly XdsAccessRule[] | undefined, who: ClientIdentity) => {
  const r = readableNamespaces(rules, who);
  return r.all ? "all" : [...r.namespaces].sort();
};

describe("xDS access: which namespaces an identity may read", () => {
  test("no rules: every served namespace", () => {
    assert.equal(names(undefined, id("x")), "all");
    assert.equal(names([], id("x", [spiffeA])), "all");
  });

  test("node id prefix: the first matching rule wins, none without a match", () => {
    const rules = [
      { nodeIdPrefix: "team-a/", namespaces: ["a"] },
      { nodeIdPrefix: "team-", namespaces: ["a", "b"] },
    ];
    assert.deepEqual(names(rules, id("team-a/orders")), ["a"]);
    assert.deepEqual(names(rules, id("team-b/orders")), ["a", "b"]);
    assert.deepEqual(names(rules, id("other")), []);
    assert.equal(readableNamespaces(rules, id("other")).all, false);
  });

  test("a rule naming a certificate is never granted on the node id alone", () => {
    const rules: XdsAccessRule[] = [
      { nodeIdPrefix: "team-a/", clientCertificate: { uri: spiffeA }, namespaces: ["a"] },
      { clientCertificate: { uri: spiffeB }, namespaces: ["b"] },
    ];
    assert.deepEqual(names(rules, id("team-a/orders")), []); // no certificate
    assert.deepEqual(names(rules, id("team-a/orders", [spiffeB])), ["b"]); // B's cert, A's node id
    assert.deepEqual(names(rules, id("team-a/orders", [spiffeA])), ["a"]);
    assert.deepEqual(names(rules, id("team-b/x", [spiffeA])), []); // A's cert, but not A's node id prefix
    assert.deepEqual(names(rules, id("anything", [spiffeB])), ["b"]);
  });

  test("certificate match: exact URI or DNS SAN, both when both are given", () => {
    const rules: XdsAccessRule[] = [
      { clientCertificate: { uri: spiffeA, dns: "a.example" }, namespaces: ["a"] },
      { clientCertificate: { dns: "b.example" }, namespaces: ["b"] },
    ];
    assert.deepEqual(names(rules, id("n", [spiffeA], ["a.example"])), ["a"]);
    assert.deepEqual(names(rules, id("n", [spiffeA], [])), []);
    assert.deepEqual(names(rules, id("n", [`${spiffeA}/x`], ["a.example"])), []); // no prefix match
    assert.deepEqual(names(rules, id("n", [], ["x.example", "b.example"])), ["b"]);
    assert.deepEqual(names(rules, id("n", [], ["B.example"])), []);
  });

  test("an empty rule matches nobody", () => {
    assert.deepEqual(names([{ clientCertificate: {}, namespaces: ["a"] }], id("n", [spiffeA])), []);
  });
});

describe("xDS access: the SANs of Node's subjectaltname", () => {
  test("URI and DNS entries, other kinds ignored, quoted entries unquoted", () => {
    assert.deepEqual(
      parseSubjectAltName(`DNS:a.example, URI:${spiffeA}, IP Address:127.0.0.1, URI:"spiffe://x/a,b", DNS:b`),
      { uris: [spiffeA, "spiffe://x/a,b"], dnsNames: ["a.example", "b"] },
    );
    assert.deepEqual(parseSubjectAltName(undefined), { uris: [], dnsNames: [] });
  });
});

describe("xDS access: config validation names the field", () => {
  const problems = (text: string): string[] => {
    try {
      parseConfig(text, "t.yaml");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems;
    }
    assert.fail("expected a ConfigError");
  };
  const tls = "tls: { certFile: /c, keyFile: /k, clientCaFile: /ca }";

  test("a valid mTLS config with certificate rules", () => {
    const c = parseConfig(
      `xds: { enabled: true, ${tls}, access: [{ clientCertificate: { uri: "${spiffeA}" }, namespaces: [a] }, { nodeIdPrefix: "ops/", clientCertificate: { dns: ops.example }, namespaces: [a, b] }] }`,
      "t.yaml",
    );
    assert.equal(c.xds.tls?.clientCaFile, "/ca");
    assert.deepEqual(c.xds.access[1]?.clientCertificate, { dns: "ops.example" });
  });

  test("errors", () => {
    assert.match(
      problems(
        `xds: { tls: { certFile: /c, keyFile: /k }, access: [{ clientCertificate: { uri: x }, namespaces: [a] }] }`,
      )[0]!,
      /^xds\.access\[0\]\.clientCertificate: needs xds\.tls\.clientCaFile/,
    );
    assert.match(
      problems("xds: { access: [{ namespaces: [a] }] }")[0]!,
      /^xds\.access\[0\]\.nodeIdPrefix: needs nodeIdPrefix or clientCertificate/,
    );
    assert.match(
      problems(`xds: { ${tls}, access: [{ clientCertificate: {}, namespaces: [a] }] }`)[0]!,
      /^xds\.access\[0\]\.clientCertificate: needs uri or dns/,
    );
    assert.match(
      problems(`xds: { ${tls}, access: [{ clientCertificate: { spiffe: x }, namespaces: [a] }] }`)[0]!,
      /^xds\.access\[0\]\.clientCertificate/,
    );
    assert.match(problems("xds: { tls: { certFile: /c } }")[0]!, /^xds\.tls\.keyFile: /);
  });
});
