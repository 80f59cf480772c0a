export type {
  BalancingOverride,
  ClientPickOptions,
  ReadyOptions,
  RosterClientOptions,
} from "./client.ts";
export { RosterClient } from "./client.ts";
export type { EndpointDiff, RosterEndpoint } from "./endpoint.ts";
export { balanceView, diffEndpoints, endpointId, hostPort, toRosterEndpoints } from "./endpoint.ts";
export type { RosterClientErrorCode } from "./errors.ts";
export {
  InvalidPublicationError,
  NoHealthyEndpointsError,
  NotSyncedError,
  RosterClientError,
  StalePublicationError,
  UnknownServiceError,
} from "./errors.ts";
export type { RequestLike } from "./hash-key.ts";
export { requestHashKey } from "./hash-key.ts";
export type {
  EndpointEvent,
  EventName,
  HealthChangedEvent,
  InvalidEvent,
  Registry,
  RosterClientEvents,
  ServiceRef,
  ServiceSnapshot,
  StaleEvent,
  StaleInfo,
  UpdatedEvent,
} from "./registry.ts";
export { createRegistry } from "./registry.ts";
export type { Ramp } from "./slow-start.ts";
export { ROUND_ROBIN_RAMP_WEIGHT, rampOf } from "./slow-start.ts";
export type { ConfigMapObject, ConfigMapSource, MemorySource } from "./source.ts";
export { informerSource, memorySource, PUBLISHED_CONFIGMAP_SELECTOR } from "./source.ts";
