/** `roster status`: the services and instances in the cluster, as a table, JSON or YAML. */
import { dump } from "js-yaml";
import type { DiscoveryPolicy, ServiceInstance } from "../api/index.ts";
import { type KubeClient, kubeClient, resourcePath } from "../kube/index.ts";
import { rosterResources } from "../operator/context.ts";
import { CliError, checkCluster, flags, loadKubeConfig } from "./common.ts";
import { renderView, rosterView, type ServiceView } from "./table.ts";

const USAGE = `Usage: roster status [-n NAMESPACE | -A] [SERVICE] [-o table|json|yaml] [--kubeconfig PATH]
`;

export async function fetchView(
  client: KubeClient,
  namespace: string | undefined,
  service?: string,
): Promise<ServiceView[]> {
  const list = async <T>(type: (typeof rosterResources)[keyof typeof rosterResources]) =>
    (await client.request<{ items: T[] }>({ method: "GET", path: resourcePath(type, { namespace }) })).items;
  const [instances, policies] = await Promise.all([
    list<ServiceInstance>(rosterResources.serviceInstances),
    list<DiscoveryPolicy>(rosterResources.discoveryPolicies),
  ]);
  const views = rosterView(instances, policies);
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
