// A TLS probe's CA bundle from a ConfigMap and a Secret, through the operator
// against the real sandbox and a real HTTPS server on loopback: a missing
// ConfigMap blocks the instance (ConfigMapNotFound) until it is created; a
// certificate that expires within tls.expiryWarning is reported as
// CertificateExpiresSoon on the Healthy condition while the instance stays
// published. A server that requires a client certificate accepts the probe
// once the kubernetes.io/tls Secret named by tls.clientCertificate exists.
import assert from "node:assert/strict";
import { createServer } from "node:https";
import { test } from "node:test";
import { createServer as createTlsServer } from "node:tls";
import { SECRET_RETRY_MS } from "../../../src/operator/targets.ts";
import { eventually, testNamespace } from "../../support/cluster.ts";
import { FAST, INTERVAL_MS, MARGIN_MS } from "../../support/instances.ts";
import { startTestOperator } from "../../support/operator.ts";
import {
  clients,
  condition,
  createInstance,
  createSecret,
  getInstance,
  readyAddresses,
} from "../../support/roster.ts";
import { listen, testCerts } from "../../support/servers.ts";

test("caBundleFrom: ConfigMap and Secret CA bundles verify a real HTTPS server; expiryWarning reports CertificateExpiresSoon", async (t) => {
  const ns = await testNamespace(t, "tlsca");
  const { ca, cert, key } = testCerts();
  const server = createServer({ cert, key }, (_req, res) => res.end("ok"));
  const port = await listen(server);
  t.after(() => server.close());
  // A server that requires a client certificate signed by the test CA (mTLS).
  const mtls = createServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true }, (_req, res) =>
    res.end("ok"),
  );
  const mtlsPort = await listen(mtls);
  t.after(() => mtls.close());
  await startTestOperator(t, { namespaces: [ns], destinations: { allowLoopback: true } });

  const httpsCheck = (caBundleFrom: object, expiryWarning?: string) => ({
    probes: [
      {
        type: "http" as const,
        http: {
          host: "127.0.0.1",
          port: "https",
          scheme: "HTTPS" as const,
          tls: { caBundleFrom, ...(expiryWarning ? { expiryWarning } : {}) },
        },
      },
    ],
    ...FAST,
  });
  await createInstance(ns, "web-cm", {
    service: "web",
    address: "192.0.2.1",
    ports: [{ name: "https", port }],
    healthCheck: httpsCheck({ configMapKeyRef: { name: "probe-ca", key: "ca.crt" } }, "72h"),
  });
  await createSecret(ns, "probe-ca", { "ca.crt": ca });
  await createInstance(ns, "web-secret", {
    service: "web",
    address: "192.0.2.2",
    ports: [{ name: "https", port }],
    healthCheck: httpsCheck({ secretKeyRef: { name: "probe-ca", key: "ca.crt" } }),
  });

  const blocked = await eventually(
    async () => {
      const s = await getInstance(ns, "web-cm");
      return condition(s, "Ready")?.reason === "ConfigMapNotFound" ? s : undefined;
    },
    { timeoutMs: 15_000, what: "web-cm blocked with ConfigMapNotFound" },
  );
  assert.match(condition(blocked, "Ready")?.message ?? "", /ConfigMap probe-ca/);

  // The Secret-backed bundle (probe Secrets are enabled in the test operator) verifies the server.
  await eventually(
    async () => ((await readyAddresses(ns, "web")).join() === "192.0.2.2" ? true : undefined),
    {
      timeoutMs: INTERVAL_MS + MARGIN_MS,
      what: "web-secret published",
    },
  );
  assert.equal(condition(await getInstance(ns, "web-secret"), "Healthy")?.reason, "ProbeSucceeded");

  // mTLS: blocked until the client certificate's Secret exists, then presented and accepted.
  await createInstance(ns, "web-mtls", {
    service: "web",
    address: "192.0.2.3",
    ports: [{ name: "https", port: mtlsPort }],
    healthCheck: {
      probes: [
        {
          type: "http",
          http: {
            host: "127.0.0.1",
            port: "https",
            scheme: "HTTPS",
            tls: { caBundle: ca, clientCertificate: { secretName: "probe-client" } },
          },
        },
      ],
      ...FAST,
    },
  });
  await eventually(
    async () =>
      condition(await getInstance(ns, "web-mtls"), "Ready")?.reason === "SecretNotFound" ? true : undefined,
    { timeoutMs: 15_000, what: "web-mtls blocked with SecretNotFound" },
  );
  await createSecret(ns, "probe-client", { "tls.crt": cert, "tls.key": key });
  await eventually(async () => ((await readyAddresses(ns, "web")).includes("192.0.2.3") ? true : undefined), {
    timeoutMs: SECRET_RETRY_MS + INTERVAL_MS + MARGIN_MS,
    what: "web-mtls published once its client certificate Secret exists",
  });

  const { core } = await clients();
  await core.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: "probe-ca" }, data: { "ca.crt": ca } },
  });
  await eventually(async () => ((await readyAddresses(ns, "web")).includes("192.0.2.1") ? true : undefined), {
    timeoutMs: SECRET_RETRY_MS + INTERVAL_MS + MARGIN_MS,
    what: "web-cm published once its ConfigMap exists",
  });
  // The test certificate is valid for 2 days: within the 72h warning.
  const soon = await eventually(
    async () => {
      const s = await getInstance(ns, "web-cm");
      return condition(s, "Healthy")?.reason === "CertificateExpiresSoon" ? s : undefined;
    },
    { timeoutMs: MARGIN_MS, what: "web-cm Healthy reason CertificateExpiresSoon" },
  );
  assert.equal(condition(soon, "Healthy")?.status, "True");
  assert.match(condition(soon, "Healthy")?.message ?? "", /certificate expires/);
});

test("tcp with tls: a server that requires a client certificate fails the probe without one (TLSError) and accepts the kubernetes.io/tls Secret's", async (t) => {
  const ns = await testNamespace(t, "tcpmtls");
  const { ca, cert, key } = testCerts();
  const mtls = createTlsServer({ cert, key, ca, requestCert: true, rejectUnauthorized: true }, (s) =>
    s.end(),
  );
  mtls.on("tlsClientError", () => {});
  const port = await listen(mtls);
  t.after(() => mtls.close());
  await startTestOperator(t, { namespaces: [ns], destinations: { allowLoopback: true } });
  const tcpCheck = (clientCertificate?: { secretName: string }) => ({
    probes: [
      {
        type: "tcp" as const,
        tcp: {
          host: "127.0.0.1",
          port: "tls",
          tls: { caBundle: ca, ...(clientCertificate ? { clientCertificate } : {}) },
        },
      },
    ],
    ...FAST,
  });
  await createInstance(ns, "db-nocert", {
    service: "db",
    address: "192.0.2.1",
    ports: [{ name: "tls", port }],
    healthCheck: tcpCheck(),
  });
  await createSecret(ns, "probe-client", { "tls.crt": cert, "tls.key": key });
  await createInstance(ns, "db-mtls", {
    service: "db",
    address: "192.0.2.2",
    ports: [{ name: "tls", port }],
    healthCheck: tcpCheck({ secretName: "probe-client" }),
  });
  await eventually(async () => ((await readyAddresses(ns, "db")).join() === "192.0.2.2" ? true : undefined), {
    timeoutMs: INTERVAL_MS + MARGIN_MS,
    what: "db-mtls published",
  });
  const refused = await eventually(
    async () => {
      const s = await getInstance(ns, "db-nocert");
      return condition(s, "Healthy")?.status === "False" ? s : undefined;
    },
    { timeoutMs: INTERVAL_MS + MARGIN_MS, what: "db-nocert unhealthy" },
  );
  assert.equal(condition(refused, "Healthy")?.reason, "TLSError");
  assert.match(condition(refused, "Healthy")?.message ?? "", /CERTIFICATE_REQUIRED/);
});
