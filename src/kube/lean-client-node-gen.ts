/** What client-node's dist/config.js imports from its gen/index.js (see lean-client-node.ts). */
export { createConfiguration } from "@kubernetes/client-node/dist/gen/configuration.js";
export { ServerConfiguration } from "@kubernetes/client-node/dist/gen/servers.js";
