/** `roster crds`: prints the CustomResourceDefinitions (for `kubectl apply -f -`). */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { crdDir } from "../dev/crds.ts";
import { flags } from "./common.ts";

export async function crds(args: string[]): Promise<number> {
  flags(
    args,
    {},
    "Usage: roster crds\n\nPrints Roster's CRDs as YAML: roster crds | kubectl apply --server-side -f -\n",
  );
  const files = readdirSync(crdDir)
    .filter((f) => f.endsWith(".yaml"))
    .sort();
  process.stdout.write(
    `${files.map((f) => readFileSync(join(crdDir, f), "utf8").trimEnd()).join("\n---\n")}\n`,
  );
  return 0;
}
