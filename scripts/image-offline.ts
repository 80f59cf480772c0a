/**
 * `make image-offline`: Roster's OCI image with no registry and no Docker
 * (src/dev/image.ts). Writes the layout to .cache/image/oci/ and its archive to
 * .cache/image/roster-oci.tar (`ctr images import`, `skopeo copy oci-archive:`).
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { buildImage, IMAGE_REF } from "../src/dev/image.ts";
import { repoRoot } from "../src/dev/sandbox.ts";

const started = process.hrtime.bigint();
const image = await buildImage({
  repo: repoRoot,
  layout: join(repoRoot, ".cache/image/oci"),
  archive: join(repoRoot, ".cache/image/roster-oci.tar"),
});
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
for (const l of image.layers)
  console.log(`  layer ${l.name.padEnd(5)} ${l.descriptor.digest} ${mb(l.descriptor.size)}`);
console.log(`${IMAGE_REF} ${image.manifest.digest}`);
console.log(
  `.cache/image/roster-oci.tar ${mb(statSync(image.archive ?? "").size)} written in ${seconds.toFixed(1)} s`,
);
