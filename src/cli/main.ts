#!/usr/bin/env node
/**
 * The `roster` command line. Each subcommand lives in its own module; this
 * file only dispatches and turns errors into messages and exit codes
 * (0 ok, 1 failure, 2 usage error).
 */
// First, and the only static import: the rest of the module graph loads after its resolve hook.
import "../kube/lean-client-node.ts";

const { CliError, usage } = await import("./common.ts");

const commands: Record<string, { summary: string; run: (args: string[]) => Promise<number> }> = {
  run: { summary: "run the operator", run: async (a) => (await import("./run.ts")).run(a) },
  dev: {
    summary: "local cluster + operator + demo (what `make run` does)",
    run: async (a) => (await import("./dev.ts")).dev(a),
  },
  status: {
    summary: "table of services and instances",
    run: async (a) => (await import("./status.ts")).status(a),
  },
  check: {
    summary: "probe instances from a manifest once, locally",
    run: async (a) => (await import("./check.ts")).check(a),
  },
  crds: {
    summary: "print the CustomResourceDefinitions",
    run: async (a) => (await import("./crds.ts")).crds(a),
  },
  selftest: {
    summary: "check a running operator answers and reconciles (the Helm test hook)",
    run: async (a) => (await import("./selftest.ts")).selftest(a),
  },
  version: {
    summary: "print the version (and the commit an image was built from)",
    run: async (a) => (await import("./version.ts")).version(a),
  },
};

function help(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return `roster: a health-checked roster of service instances, published as EndpointSlices and ConfigMaps

Usage: roster <command> [flags]   (roster <command> --help for its flags)

Commands:
${lines.join("\n")}
`;
}

const [name, ...rest] = process.argv.slice(2);
if (!name || name === "--help" || name === "-h" || name === "help") {
  process.stdout.write(help());
  process.exit(name ? 0 : 2);
}
const command = commands[name];
if (!command) {
  process.stderr.write(`roster: unknown command ${JSON.stringify(name)}\n\n${help()}`);
  process.exit(2);
}
if (name === "run") {
  // V8 fixes its heap limits at start: re-execute once with limits derived
  // from the container's memory limit (the flags then set them, so this
  // happens once). Same PID, so signals and PID 1 stay as they were.
  const { heapFlagsForThisProcess } = await import("./v8-limits.ts");
  const flags = heapFlagsForThisProcess();
  if (flags && typeof process.execve === "function") {
    process.execve(process.execPath, [
      process.execPath,
      ...process.execArgv,
      ...flags,
      ...process.argv.slice(1),
    ]);
  }
}
try {
  process.exitCode = await command.run(rest);
} catch (err) {
  if (err instanceof CliError) {
    process.stderr.write(`roster ${name}: ${err.message}\n`);
    if (err.usage) process.stderr.write(`\n${usage(name, err.usage)}`);
    process.exitCode = err.exitCode;
  } else if (err instanceof Error && err.name === "ApiError") {
    // The API server's own words are the useful part; a stack trace is noise.
    process.stderr.write(`roster ${name}: ${err.message}\n`);
    process.exitCode = 1;
  } else {
    // Unexpected: keep the stack, it is a bug report.
    process.stderr.write(
      `roster ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  }
}
