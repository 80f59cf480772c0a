import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  cgroupMemoryLimit,
  derivedHeapFlags,
  heapLimitsFor,
  parseLimit,
  setsHeapLimit,
} from "../../../src/cli/v8-limits.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const files =
  (f: Record<string, string>) =>
  (path: string): string | undefined =>
    f[path];

describe("V8 heap limits from the memory limit", () => {
  test("old space is the limit minus the native reserve, at least half of it; small semi-space", () => {
    // The chart's default limit (640Mi) gives the old-space cap docs/scaling.md sizes it for.
    assert.deepEqual(heapLimitsFor(640 * MiB), { oldSpaceMiB: 384, semiSpaceMiB: 16 });
    assert.deepEqual(heapLimitsFor(2 * GiB), { oldSpaceMiB: 1792, semiSpaceMiB: 16 });
    // Below 512 MiB the reserve is half the limit and the young generation shrinks with it.
    assert.deepEqual(heapLimitsFor(256 * MiB), { oldSpaceMiB: 128, semiSpaceMiB: 8 });
    assert.deepEqual(heapLimitsFor(20 * MiB), { oldSpaceMiB: 16, semiSpaceMiB: 1 });
  });

  test("an explicit --max-old-space-size (NODE_OPTIONS or the command line) wins", () => {
    assert.equal(setsHeapLimit("--max-old-space-size=384"), true);
    assert.equal(setsHeapLimit("--enable-source-maps --max_old_space_size=100"), true);
    assert.equal(setsHeapLimit("--max-semi-space-size=16"), false);
    assert.equal(derivedHeapFlags([], "--max-old-space-size=384", 640 * MiB, 24 * GiB), undefined);
    assert.equal(derivedHeapFlags(["--max-old-space-size=100"], undefined, 640 * MiB, 24 * GiB), undefined);
    assert.deepEqual(derivedHeapFlags(["--expose-gc"], "--max-semi-space-size=4", 640 * MiB, 24 * GiB), [
      "--max-old-space-size=384",
      "--max-semi-space-size=16",
    ]);
  });

  test("no limit, or one not below the machine's memory: Node's defaults", () => {
    assert.equal(derivedHeapFlags([], undefined, undefined, 24 * GiB), undefined);
    assert.equal(derivedHeapFlags([], undefined, 32 * GiB, 24 * GiB), undefined);
  });

  test("cgroup limit files: bytes, v2's max, v1's page-rounded 2^63", () => {
    assert.equal(parseLimit("671088640\n"), 640 * MiB);
    assert.equal(parseLimit("max\n"), undefined);
    assert.equal(parseLimit("9223372036854771712\n"), undefined);
    assert.equal(parseLimit(""), undefined);
    assert.equal(parseLimit(undefined), undefined);
  });

  test("cgroup v2: memory.max of the process's cgroup, the smallest along its path", () => {
    // In a container's cgroup namespace the path is / and the limit sits at the root.
    assert.equal(
      cgroupMemoryLimit(files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "671088640\n" })),
      640 * MiB,
    );
    // Without a namespace: the pod's limit on a parent binds the container below it.
    assert.equal(
      cgroupMemoryLimit(
        files({
          "/proc/self/cgroup": "0::/kubepods/pod1/c1\n",
          "/sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n",
          "/sys/fs/cgroup/kubepods/pod1/memory.max": "536870912\n",
          "/sys/fs/cgroup/kubepods/memory.max": "max\n",
        }),
      ),
      512 * MiB,
    );
    assert.equal(
      cgroupMemoryLimit(files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "max\n" })),
      undefined,
    );
  });

  test("cgroup v1 and hybrid hosts: memory.limit_in_bytes of the memory controller's cgroup", () => {
    // A hybrid host (like this one): v2 is mounted without the memory controller.
    const hybrid = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/\n";
    assert.equal(
      cgroupMemoryLimit(
        files({
          "/proc/self/cgroup": hybrid,
          "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "1073741824\n",
          "/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes": "9223372036854771712\n",
          "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        }),
      ),
      GiB,
    );
    // The host's path is not mounted in the container: the container's root holds its limit.
    assert.equal(
      cgroupMemoryLimit(
        files({
          "/proc/self/cgroup": "4:memory:/docker/0123\n",
          "/sys/fs/cgroup/memory/memory.limit_in_bytes": "671088640\n",
        }),
      ),
      640 * MiB,
    );
    assert.equal(
      cgroupMemoryLimit(
        files({
          "/proc/self/cgroup": hybrid,
          "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        }),
      ),
      undefined,
    );
    assert.equal(cgroupMemoryLimit(files({})), undefined);
  });
});
