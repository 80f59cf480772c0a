/** Published documents and ConfigMaps for client tests, built the way the operator writes them. */
import {
  type EndpointState,
  isRoutableState,
  type LoadBalancing,
  PUBLISHED_DATA_KEY,
  PUBLISHED_FORMAT_VERSION,
  PUBLISHED_REVISION_ANNOTATION,
  PUBLISHED_STALE_ANNOTATION,
  type PublishedEndpoint,
  type PublishedStale,
  serializePublishedEndpoints,
} from "../../../src/api/published.ts";
import type { ConfigMapObject } from "../../../src/client/source.ts";
import { defaultConfigMapName, publishedLabels } from "../../../src/publish/labels.ts";

export interface EndpointSpec {
  instance: string;
  address?: string;
  state?: EndpointState;
  weight?: number;
  zone?: string;
  healthy?: boolean;
}

let ip = 1;

export function endpoint(spec: EndpointSpec): PublishedEndpoint {
  const state = spec.state ?? "Ready";
  return {
    instance: spec.instance,
    address: spec.address ?? `10.0.0.${ip++}`,
    family: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    weight: spec.weight ?? 100,
    ...(spec.zone ? { zone: spec.zone } : {}),
    tags: [],
    metadata: {},
    state,
    ready: isRoutableState(state),
    healthy: spec.healthy ?? state === "Ready",
  };
}

export interface DocSpec {
  namespace?: string;
  service: string;
  revision: number;
  panic?: boolean;
  loadBalancing?: Partial<LoadBalancing>;
  endpoints: PublishedEndpoint[];
  configMap?: string;
  /** A stale document (endpoints must then be empty). */
  stale?: PublishedStale;
}

export function configMap(spec: DocSpec): ConfigMapObject {
  const namespace = spec.namespace ?? "default";
  const text = serializePublishedEndpoints({
    formatVersion: PUBLISHED_FORMAT_VERSION,
    revision: spec.revision,
    namespace,
    service: spec.service,
    panic: spec.panic ?? false,
    loadBalancing: { strategy: "RoundRobin", zoneAware: false, ...spec.loadBalancing },
    endpoints: spec.endpoints,
    ...(spec.stale ? { stale: spec.stale } : {}),
  });
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      namespace,
      name: spec.configMap ?? defaultConfigMapName(spec.service),
      labels: publishedLabels(spec.service),
      annotations: {
        [PUBLISHED_REVISION_ANNOTATION]: String(spec.revision),
        ...(spec.stale ? { [PUBLISHED_STALE_ANNOTATION]: spec.stale.reason } : {}),
      },
    },
    data: { [PUBLISHED_DATA_KEY]: text },
  };
}
