/**
 * What Roster publishes per (namespace, service), as pure functions: the
 * desired endpoint model, the EndpointSlice planner, and the Service and
 * ConfigMap builders. The reconciler reads the cluster, calls these, and
 * applies the results; nothing here talks to the API server.
 */
export type { AddressCheck } from "./addresses.ts";
export { canonicalIp, checkAddress, sliceRejection } from "./addresses.ts";
export type { ConfigMapPlan, ConfigMapPlanInput } from "./configmap.ts";
export {
  buildPublishedContent,
  nextRevision,
  overBudgetMessage,
  PublishedDocumentTooLargeError,
  planConfigMap,
  staleReasonOf,
} from "./configmap.ts";
export type { PartedPlan, PartedPlanInput } from "./configmap-parts.ts";
export { isHead, isPart, isPartOf, planPartedConfigMaps, splitEndpoints } from "./configmap-parts.ts";
export type {
  DesiredPublication,
  DesiredSliceEndpoints,
  InstanceInput,
  InstancePort,
  PublishCounts,
  PublishPolicy,
  SkippedAddress,
  SliceEndpoint,
  Verdict,
} from "./desired.ts";
export { computeDesired, DEFAULT_WEIGHT, endpointKey, isPanic, normalizePorts } from "./desired.ts";
export * from "./labels.ts";
export type { ServiceBuild, ServiceBuildInput, ServicePortConflict } from "./service.ts";
export { buildService, serviceNeedsReplace, serviceOwnerReference, servicePorts } from "./service.ts";
export type { SlicePlan, SlicePlanOptions, SlicePlanStats } from "./slices.ts";
export {
  applySlicePlan,
  DEFAULT_MAX_ENDPOINTS_PER_SLICE,
  endpointFingerprint,
  isEmptyPlan,
  MAX_ENDPOINTS_PER_SLICE_LIMIT,
  normalizeSlicePorts,
  planEndpointSlices,
  sameEndpoint,
  sliceEndpoints,
} from "./slices.ts";
