/**
 * Helpers for the Helm chart tests: run the `bin/helm` built from helm/go.mod,
 * render the chart with a set of values, and pick objects out of the result.
 *
 * Helm runs with its cache/config/data homes in a temporary directory, so the
 * tests neither read nor write the user's Helm state (repositories, plugins).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadAll } from "js-yaml";
import { repoRoot } from "../../src/dev/sandbox.ts";

export const chartDir = resolve(repoRoot, "charts/roster");
export const helmBinary = resolve(repoRoot, "bin/helm");
/** The sandbox's Kubernetes version: `helm template` renders for it. */
export const kubeVersion = "v1.36.3";

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

const home = mkdtempSync(join(tmpdir(), "roster-helm-"));
process.once("exit", () => rmSync(home, { recursive: true, force: true }));

/** Fails with the command that fixes it when Helm has not been built. */
export function requireHelm(): string {
  if (!existsSync(helmBinary)) {
    throw new Error(`${helmBinary} is missing: build it with \`make helm\` (Helm from helm/go.mod)`);
  }
  return helmBinary;
}

/** Runs bin/helm; resolves with its exit code and output (never rejects on a non-zero exit). */
export function helm(args: string[], options: { kubeconfig?: string } = {}): Promise<HelmResult> {
  const bin = requireHelm();
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    HELM_CACHE_HOME: join(home, "cache"),
    HELM_CONFIG_HOME: join(home, "config"),
    HELM_DATA_HOME: join(home, "data"),
    // Without a kubeconfig, point at an empty path so Helm never falls back to ~/.kube/config.
    KUBECONFIG: options.kubeconfig ?? join(home, "no-kubeconfig"),
  };
  return new Promise((done) => {
    execFile(bin, args, { env, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

/** Runs bin/helm and throws (with its stderr) unless it exits 0. */
export async function helmOk(args: string[], options: { kubeconfig?: string } = {}): Promise<string> {
  const r = await helm(args, options);
  if (r.code !== 0) throw new Error(`helm ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

let valuesSeq = 0;
/** Writes values to a temporary YAML (JSON is YAML) file for `-f`. */
export function valuesFile(values: Record<string, unknown>): string {
  const file = join(home, `values-${++valuesSeq}.yaml`);
  writeFileSync(file, JSON.stringify(values));
  return file;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  apiVersions?: string[];
  /** Include the `helm test` hooks (templates/tests/); off by default, as `helm install` does not create them. */
  tests?: boolean;
}

function templateArgs(values: Record<string, unknown>, options: RenderOptions): string[] {
  const args = [
    "template",
    options.release ?? "rel",
    chartDir,
    "--namespace",
    options.namespace ?? "roster-system",
    "--kube-version",
    kubeVersion,
    "-f",
    valuesFile(values),
  ];
  for (const v of options.apiVersions ?? []) args.push("--api-versions", v);
  if (!options.tests) args.push("--skip-tests");
  return args;
}

/** `helm template` with these values; the rendered objects (CRDs excluded, as Helm does by default). */
export async function render(
  values: Record<string, unknown> = {},
  options: RenderOptions = {},
): Promise<Manifest[]> {
  const out = await helmOk(templateArgs(values, options));
  return (loadAll(out) as unknown[]).filter((d): d is Manifest => typeof d === "object" && d !== null);
}

/** `helm template` expected to fail: its exit code and stderr. */
export function renderFailure(
  values: Record<string, unknown>,
  options: RenderOptions = {},
): Promise<HelmResult> {
  return helm(templateArgs(values, options));
}

/** The one object of this kind (and name, if given); throws listing what there is otherwise. */
export function one<T = Manifest>(objects: Manifest[], kind: string, name?: string, namespace?: string): T {
  const found = objects.filter(
    (o) =>
      o.kind === kind &&
      (name === undefined || o.metadata.name === name) &&
      (namespace === undefined || o.metadata.namespace === namespace),
  );
  if (found.length !== 1) {
    const have = objects.map((o) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name}`).join(", ");
    throw new Error(
      `expected one ${kind} ${name ?? ""} ${namespace ?? ""}, found ${found.length} in: ${have}`,
    );
  }
  return found[0] as T;
}

export function kinds(objects: Manifest[]): string[] {
  return objects.map((o) => o.kind).sort();
}
