/** The probe engine's public surface. */
export { dnsCache, systemResolver } from "./dns.ts";
export type { EngineStats, ProbeEngine, ProbeEngineOptions } from "./engine.ts";
export { createProbeEngine } from "./engine.ts";
export { healthServiceDefinition, servingStatus } from "./grpc-probe.ts";
export type { DestinationPolicyConfig } from "./policy.ts";
export { defaultDeny, destinationPolicy, parseCidr } from "./policy.ts";
export { Reason } from "./reasons.ts";
export { transitionStream } from "./stream.ts";
export type * from "./types.ts";
export type { VerdictConfig, VerdictInput, VerdictState } from "./verdict.ts";
export { initialVerdict, step } from "./verdict.ts";
