/** `roster status`: the services and instances in the cluster, as a table, JSON or YAML. */
import { dump } from "js-yaml";
import type { DiscoveryPolicy, ServiceInstance } from "../api/index.ts";
import { safeParsePublishedEndpoints } from "../api/published.ts";
import { PUBLISHED_CONFIGMAP_SELECTOR } from "../client/source.ts";
import {
  ApiError,
  type KubeClient,
  kubeClient,
  type ResourceType,
  resourcePath,
  resources,
} from "../kube/index.ts";
import { rosterResources } from "../operator/context.ts";
import { CliError, checkCluster, flags, loadKubeConfig, retryTransient } from "./common.ts";
import { type PublishedSummary, renderView, rosterView, type ServiceView } from "./table.ts";

const USAGE = `Usage: roster status [-n NAMESPACE | -A] [SERVICE] [-o table|json|yaml] [--kubeconfig PATH]

Shows Roster's services and their instances: health, readiness and its reason, weight, zone,
and per service the policy, strategy, published revision and panic flag.

  -n, --namespace NS   the namespace (default: the kubeconfig context's, else default)
  -A, --all-namespaces every namespace
  SERVICE              only this service (exit code 1 if it does not exist)
  -o, --output FORMAT  table (default), json or yaml
  --kubeconfig PATH    kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)
`;

interface ConfigMapLike {
  data?: Record<string, string>;
}

export async function fetchView(
  client: KubeClient,
  namespace: string | undefined,
  service?: string,
): Promise<ServiceView[]> {
  const list = <T>(type: ResourceType, labelSelector?: string) =>
    retryTransient(
      async () =>
        (
          await client.request<{ items: T[] }>({
            method: "GET",
            path: resourcePath(type, { namespace }),
            query: { labelSelector },
          })
        ).items,
    );
  const [instances, policies, configMaps] = await Promise.all([
    list<ServiceInstance>(rosterResources.serviceInstances),
    list<DiscoveryPolicy>(rosterResources.discoveryPolicies),
    // Best effort: someone allowed to read Roster's objects may not be allowed to read ConfigMaps.
    list<ConfigMapLike>(resources.configMaps, PUBLISHED_CONFIGMAP_SELECTOR).catch((err: unknown) => {
      if (err instanceof ApiError && (err.status === 403 || err.status === 401)) return [];
      throw err;
    }),
  ]);
  const published: PublishedSummary[] = [];
  for (const cm of configMaps) {
    const r = safeParsePublishedEndpoints(cm.data);
    if (!r.ok) continue;
    const d = r.document;
    published.push({
      namespace: d.namespace,
      service: d.service,
      revision: d.revision,
      panic: d.panic,
      strategy: d.loadBalancing.strategy,
    });
  }
  const views = rosterView(instances, policies, published);
  return service ? views.filter((v) => v.service === service) : views;
}

export async function status(args: string[]): Promise<number> {
  const { values, positionals } = flags(
    args,
    {
      namespace: { type: "string", short: "n" },
      "all-namespaces": { type: "boolean", short: "A" },
      output: { type: "string", short: "o", default: "table" },
      kubeconfig: { type: "string" },
    },
    USAGE,
  );
  if (!["table", "json", "yaml"].includes(values.output as string)) {
    throw new CliError(`-o must be table, json or yaml`, { exitCode: 2, usage: USAGE });
  }
  const kc = loadKubeConfig(values.kubeconfig);
  await checkCluster(kc);
  const namespace = values["all-namespaces"]
    ? undefined
    : (values.namespace ?? kc.getContextObject(kc.currentContext)?.namespace ?? "default");
  const views = await fetchView(kubeClient(kc), namespace, positionals[0]);
  if (positionals[0] && views.length === 0) {
    throw new CliError(`service ${positionals[0]} not found in ${namespace ?? "any namespace"}`);
  }
  const out =
    values.output === "json"
      ? `${JSON.stringify(views, null, 2)}\n`
      : values.output === "yaml"
        ? dump(views)
        : renderView(views, { color: process.stdout.isTTY });
  process.stdout.write(out);
  return 0;
}
