/**
 * The `roster` package: what an in-cluster consumer imports.
 *
 *   import { RosterClient } from "roster";
 *
 * - RosterClient and its events, errors and helpers (src/client);
 * - the five load-balancing strategies as pure algorithms (src/balance), for
 *   consumers that bring their own endpoint lists;
 * - the published ConfigMap format (src/api/published.ts), for tools that
 *   read or write it directly.
 */
export type {
  AddressFamily,
  ConsistentHash as PublishedConsistentHash,
  EndpointState,
  HashAlgorithm,
  HashKey,
  HashKeySource,
  LoadBalancing,
  LoadBalancingStrategy,
  ParseResult,
  Protocol,
  PublishedEndpoint,
  PublishedEndpoints,
  PublishedFormatErrorCode,
  PublishedPort,
  PublishedSlowStart,
} from "./api/published.ts";
export {
  isRoutableState,
  PUBLISHED_DATA_KEY,
  PUBLISHED_FORMAT_VERSION,
  PUBLISHED_REVISION_ANNOTATION,
  PublishedFormatError,
  parsePublishedEndpoints,
  SUPPORTED_FORMAT_VERSIONS,
  safeParsePublishedEndpoints,
  serializePublishedEndpoints,
  slowStartFactor,
  slowStartWeight,
} from "./api/published.ts";
export * from "./balance/index.ts";
export * from "./client/index.ts";
