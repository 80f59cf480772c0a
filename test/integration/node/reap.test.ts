// A node that crashed (its process SIGKILLed, so nothing of it cleaned up)
// leaves its pods running under its cgroup /rst-<pid>-node; the next node
// start kills them and removes the cgroups (and with the last process the
// node's private mount namespace and every mount in it goes too).
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CoreV1Api } from "@kubernetes/client-node";
import { eventually } from "../../support/cluster.ts";
import { testNode } from "./support.ts";

/** Every process in a cgroup tree of the pids hierarchy. */
function procsUnder(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const own = readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  const sub = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => procsUnder(join(dir, e.name)));
  return [...own, ...sub];
}

/** Exists and is not a zombie. */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !stat
      .slice(stat.lastIndexOf(")") + 1)
      .trim()
      .startsWith("Z");
  } catch {
    return false;
  }
};

test("the next node start reaps the pods and cgroups of a node that was killed", async (t) => {
  const first = await testNode(t);
  if (!first) return;
  const core = first.kc.makeApiClient(CoreV1Api);
  // The pause image is always there: a pod needing no other image.
  await core.createNamespacedPod({
    namespace: "default",
    body: {
      metadata: { name: "left-behind" },
      spec: {
        nodeName: first.node.name,
        automountServiceAccountToken: false,
        containers: [{ name: "pause", image: first.node.pauseImage, imagePullPolicy: "Never" }],
      },
    },
  });
  await eventually(
    async () => {
      const p = await core.readNamespacedPod({ namespace: "default", name: "left-behind" });
      return p.status?.phase === "Running" ? true : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 250, what: "the pod to run" },
  );

  const cgroup = `/sys/fs/cgroup/pids${first.node.cgroupRoot}`;
  process.kill(first.node.pid, "SIGKILL");
  // containerd and the kubelet die with it (parent-death signal); the
  // container shims and the pod's processes do not, as after any crash.
  const survivors = await eventually(
    () => {
      const left = procsUnder(cgroup);
      return !alive(first.node.pid) && left.length > 0 ? left : undefined;
    },
    { timeoutMs: 10_000, what: "the killed node's pods to be all that is left" },
  );

  const second = await testNode(t);
  assert.ok(second);
  assert.equal(existsSync(cgroup), false, `${first.node.cgroupRoot} was removed`);
  assert.deepEqual(survivors.filter(alive), [], "the killed node's shims and pod processes are gone");
});
