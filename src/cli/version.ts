/** `roster version`: the version of package.json and the commit the image was built from. */
import { readFileSync } from "node:fs";
import { flags } from "./common.ts";

const USAGE = `Usage: roster version

Prints Roster's version (package.json) and, in an image, the git commit it was built from
(ROSTER_COMMIT, set by \`make image\` and \`make image-offline\`).
`;

/** "roster 0.1.0 (commit abc…)", or without the commit when none was baked in. */
export function versionLine(version: string, commit: string | undefined): string {
  return commit ? `roster ${version} (commit ${commit})` : `roster ${version}`;
}

export async function version(args: string[]): Promise<number> {
  flags(args, {}, USAGE);
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  process.stdout.write(`${versionLine(pkg.version, process.env.ROSTER_COMMIT || undefined)}\n`);
  return 0;
}
