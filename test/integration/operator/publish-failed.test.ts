// The API server refuses the Service create (a ValidatingAdmissionPolicy
// denies Services in the namespace): the policy says why (Ready False,
// PublishFailed, with the API server's answer), the operator keeps retrying,
// and once the admission policy is gone the service is published.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AdmissionregistrationV1Api } from "@kubernetes/client-node";
import { eventually, testCluster, testNamespace } from "../../support/cluster.ts";
import { webInstance } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  clients,
  condition,
  createInstance,
  createPolicy,
  getPolicy,
  readyAddresses,
} from "../../support/roster.ts";
import { httpTargets } from "../../support/targets.ts";

test("a refused Service create lands on the policy as PublishFailed, and publication follows once allowed", async (t) => {
  const ns = await testNamespace(t, "refused");
  const [target] = await httpTargets(t, 1);
  const admission = (await testCluster()).kc.makeApiClient(AdmissionregistrationV1Api);
  const name = `deny-services-${ns}`;
  await admission.createValidatingAdmissionPolicy({
    body: {
      metadata: { name },
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [
            { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["services"] },
          ],
        },
        validations: [
          { expression: "false", message: "no Services in this namespace (test admission policy)" },
        ],
      },
    },
  });
  const unbind = async () => {
    await admission.deleteValidatingAdmissionPolicyBinding({ name }).catch(() => undefined);
    await admission.deleteValidatingAdmissionPolicy({ name }).catch(() => undefined);
  };
  t.after(unbind);
  await admission.createValidatingAdmissionPolicyBinding({
    body: {
      metadata: { name },
      spec: {
        policyName: name,
        validationActions: ["Deny"],
        matchResources: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": ns } } },
      },
    },
  });
  // The API server applies new admission policies after its informer sees them.
  const { core } = await clients();
  await eventually(
    () =>
      core
        .createNamespacedService({
          namespace: ns,
          body: { metadata: { name: "probe" }, spec: { ports: [{ port: 80 }] } },
        })
        .then(
          () => core.deleteNamespacedService({ namespace: ns, name: "probe" }).then(() => undefined),
          () => true,
        ),
    { timeoutMs: 10_000, what: "the admission policy to take effect" },
  );
  await startTestOperator(t, { namespaces: [ns] });
  await createPolicy(ns, "web", { service: "web" });
  await createInstance(ns, "web-1", webInstance(target!, 0));

  const ready = await eventually(
    async () => {
      const c = condition(await getPolicy(ns, "web"), "Ready");
      return c?.reason === "PublishFailed" ? c : undefined;
    },
    { timeoutMs: 20_000, what: "Ready False PublishFailed on the policy" },
  );
  assert.equal(ready.status, "False");
  assert.match(ready.message ?? "", /no Services in this namespace/, ready.message);
  t.diagnostic(`policy Ready: ${ready.message}`);

  await unbind();
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === "192.0.2.1" ? true : undefined),
    {
      timeoutMs: 30_000,
      what: "published once the quota is gone",
    },
  );
  await eventually(
    async () => {
      const c = condition(await getPolicy(ns, "web"), "Ready");
      return c?.status === "True" && c.reason === "Published" ? true : undefined;
    },
    { timeoutMs: 10_000, what: "Ready True Published" },
  );
});
