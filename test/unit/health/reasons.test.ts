// Mapping of Node's TLS verification errors to reasons.
import assert from "node:assert/strict";
import { test } from "node:test";
import { classifyError } from "../../../src/health/reasons.ts";

test("an expired certificate is CertificateExpired; other verification errors stay TLSError", () => {
  const expired = Object.assign(new Error("certificate has expired"), { code: "CERT_HAS_EXPIRED" });
  assert.deepEqual(classifyError(expired), {
    ok: false,
    reason: "CertificateExpired",
    message: "CERT_HAS_EXPIRED: certificate has expired",
  });
  const untrusted = Object.assign(new Error("unable to verify"), { code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });
  assert.equal(classifyError(untrusted).reason, "TLSError");
});
