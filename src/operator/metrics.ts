/**
 * The operator's own metrics (the manager's registry carries the controller
 * and client ones): probe latency, failures and voided probes, verdict
 * transitions, and the probe-target and shard-member gauges. Defined here so
 * `createOperator` only wires them to the engine.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { ProbeObservation, Transition } from "../health/index.ts";

export interface OperatorMetrics {
  /** Counts one probe: voided, or its latency (network probes only) and failure. */
  probe(o: ProbeObservation): void;
  /** Counts an instance's (not an address's) verdict transition. */
  transition(t: Transition): void;
}

export interface MetricReads {
  /** Instances this replica probes. */
  targets(): number;
  /** Live replicas probing a share (1 without sharding). */
  members(): number;
}

export function operatorMetrics(registry: Registry, reads: MetricReads): OperatorMetrics {
  const registers = [registry];
  const probeDuration = new Histogram({
    name: "roster_probe_duration_seconds",
    help: "Duration of health probes by type and result.",
    labelNames: ["type", "result"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const probeFailures = new Counter({
    name: "roster_probe_failures_total",
    help: "Failed health probes by type and reason.",
    labelNames: ["type", "reason"],
    registers,
  });
  const probeVoided = new Counter({
    name: "roster_probe_voided_total",
    help: "Probes that gave no result by type and cause: queue (no slot free within the timeout), stall (the operator's event loop was blocked).",
    labelNames: ["type", "cause"],
    registers,
  });
  const transitions = new Counter({
    name: "roster_verdict_transitions_total",
    help: "Instance verdict transitions by new verdict (Degraded: healthy but degraded, from any verdict).",
    labelNames: ["to"],
    registers,
  });
  new Gauge({
    name: "roster_probe_targets",
    help: "Instances this replica probes.",
    registers,
    collect() {
      this.set(reads.targets());
    },
  });
  new Gauge({
    name: "roster_shard_members",
    help: "Live replicas probing a share of the instances (1 without sharding).",
    registers,
    collect() {
      this.set(reads.members());
    },
  });

  return {
    probe(o) {
      // No result: says nothing about the target, so it is neither a failure nor a latency.
      if (o.voided) {
        probeVoided.inc({ type: o.type, cause: o.voided });
        return;
      }
      // Runs decided without a network exchange (registration only, a
      // refused address) are no probe latency, but failures still count.
      if (!o.local) {
        probeDuration.observe({ type: o.type, result: o.ok ? "success" : "failure" }, o.latencyMs / 1000);
      }
      if (!o.ok) probeFailures.inc({ type: o.type, reason: o.reason });
    },
    transition(t) {
      // A Healthy verdict that turns degraded counts as to="Degraded".
      if (t.address === undefined)
        transitions.inc({ to: t.to === "Healthy" && t.degraded ? "Degraded" : t.to });
    },
  };
}
