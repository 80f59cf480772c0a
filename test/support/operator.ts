/**
 * Runs the real operator in the test process against the test cluster,
 * scoped to the test's namespace, with loopback probing allowed (the probe
 * targets are real servers on 127.0.0.0/8), and stops it when the test ends.
 */
import type { TestContext } from "node:test";
import type { KubeConfig } from "@kubernetes/client-node";
import { DefaultPolicy } from "../../src/config/schema.ts";
import type { DestinationPolicyConfig } from "../../src/health/index.ts";
import { createLogger, type LogLevel } from "../../src/kube/log.ts";
import type { OperatorSettings } from "../../src/operator/context.ts";
import {
  createOperator,
  type Operator,
  type ProbingOptions,
  type XdsOptions,
} from "../../src/operator/operator.ts";
import { testCluster } from "./cluster.ts";

export interface TestOperatorOptions {
  namespaces: string[];
  /** Another cluster than the shared test cluster (e.g. a private sandbox). */
  kubeConfig?: KubeConfig;
  /** Default: loopback allowed (the probe targets are loopback servers). */
  destinations?: DestinationPolicyConfig;
  settings?: Partial<OperatorSettings>;
  leaderElection?: { namespace: string; name: string; identity?: string };
  /** Merged over the probing options (resolver, DNS refresh, limits; `destinations` above). */
  probing?: Partial<ProbingOptions>;
  /** The xDS server (port 0: any free port; see operator.xds.port()). */
  xds?: XdsOptions;
  /** The write gate's budget (default: the operator's). */
  maxInflightWrites?: number;
  /** Workers per controller (default 4). */
  concurrency?: number;
}

export function testSettings(overrides: Partial<OperatorSettings> = {}): OperatorSettings {
  return {
    defaults: DefaultPolicy.parse({}),
    batchWindowMs: 20,
    startupHoldMs: 10_000,
    probeSecrets: true,
    policyStatusIntervalMs: 1000,
    ...overrides,
  };
}

export async function startTestOperator(t: TestContext, options: TestOperatorOptions): Promise<Operator> {
  const kc = options.kubeConfig ?? (await testCluster()).kc;
  const operator = createOperator({
    kubeConfig: kc,
    namespaces: options.namespaces,
    settings: testSettings(options.settings),
    probing: { destinations: options.destinations ?? { allowLoopback: true }, ...options.probing },
    leaderElection: options.leaderElection
      ? {
          enabled: true,
          ...options.leaderElection,
          leaseDurationMs: 3000,
          renewDeadlineMs: 2000,
          retryPeriodMs: 500,
        }
      : { enabled: false, namespace: "default", name: "unused" },
    concurrency: { default: options.concurrency ?? 4 },
    maxInflightWrites: options.maxInflightWrites,
    xds: options.xds,
    // ROSTER_TEST_LOG=debug shows the operator's logs while debugging a test.
    logger: process.env.ROSTER_TEST_LOG
      ? createLogger({ level: process.env.ROSTER_TEST_LOG as LogLevel })
      : undefined,
  });
  await operator.start();
  t.after(() => operator.stop());
  return operator;
}
