/**
 * src/kube/lean-client-node.ts: with its resolve hook, the operator's module
 * graph (what `roster run` loads) takes KubeConfig and the fetch layer from
 * client-node without its generated models and APIs, and KubeConfig still
 * works (credentials applied to a request). Runs in a child process: the hook
 * must be registered before client-node is first resolved.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

const script = `
import { registerHooks } from "node:module";
const loaded = [];
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context);
    loaded.push(r.url);
    return r;
  },
});
await import("./src/kube/lean-client-node.ts");
const { KubeConfig } = await import("@kubernetes/client-node/dist/config.js");
await import("./src/operator/operator.ts");
await import("./src/cli/run.ts");
const { RequestContext, HttpMethod } = await import("@kubernetes/client-node/dist/gen/http/http.js");
const kc = new KubeConfig();
kc.loadFromString(JSON.stringify({
  apiVersion: "v1", kind: "Config", "current-context": "x",
  clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:6443" } }],
  users: [{ name: "u", user: { token: "secret-token" } }],
  contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
}));
const ctx = new RequestContext(kc.getCurrentCluster().server + "/version", HttpMethod.GET);
await kc.applySecurityAuthentication(ctx);
const cn = loaded.filter((u) => u.includes("/@kubernetes/client-node/"));
console.log(JSON.stringify({
  authorization: ctx.getHeaders().Authorization,
  models: cn.filter((u) => u.includes("/gen/models/")).length,
  apis: cn.filter((u) => u.includes("/gen/apis/") || u.includes("/gen/types/")).length,
  genIndex: cn.some((u) => u.endsWith("/dist/gen/index.js")),
  modules: cn.length,
}));
`;

test("the operator's graph loads KubeConfig without client-node's generated models and APIs", () => {
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: new URL("../../..", import.meta.url),
    encoding: "utf8",
  });
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, unknown>;
  assert.equal(r.authorization, "Bearer secret-token");
  assert.equal(r.genIndex, false);
  assert.equal(r.models, 0);
  assert.equal(r.apis, 0);
});
