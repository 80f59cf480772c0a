/**
 * Loads less of @kubernetes/client-node (issue 18: memory at small scale).
 * Roster uses its KubeConfig (every auth method a kubeconfig can express)
 * and its fetch layer, never its generated API classes and models; but
 * `dist/config.js` (KubeConfig) imports two names from `./gen/index.js`,
 * which re-exports every generated model and API: about 15 MiB of live
 * heap and 37 MiB of RSS for code Roster never calls.
 *
 * Imported first by the entry points (`src/cli/main.ts`, the bench's
 * operator child), before anything else loads client-node: a resolve hook
 * hands config.js `lean-client-node-gen.ts` instead, which exports the two
 * names from the same modules gen/index.js takes them from (so classes stay
 * identical). Any other importer of gen/index.js (client-node's root, used
 * by the dev tools) still gets the whole of it. Without this module (tests,
 * the client library) everything works the same, with the bigger heap.
 * client-node is pinned (package.json); test/unit/kube/lean-client-node.test.ts
 * fails when config.js wants names the lean module lacks.
 */
import { registerHooks } from "node:module";

const lean = new URL("./lean-client-node-gen.ts", import.meta.url).href;

registerHooks({
  resolve(specifier, context, next) {
    if (
      specifier === "./gen/index.js" &&
      context.parentURL?.endsWith("/@kubernetes/client-node/dist/config.js")
    )
      return { url: lean, shortCircuit: true };
    return next(specifier, context);
  },
});
