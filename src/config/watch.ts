/**
 * Hot reload of the config file.
 *
 * The file's directory is watched (so the atomic symlink swap Kubernetes
 * does for a mounted ConfigMap is seen as well as an in-place edit or a
 * rename-over), events are debounced, and a slow poll backs up the watcher
 * on filesystems where inotify events get lost.
 *
 * Guarantees:
 * - Reloads are serialized; `onChange(next, prev, changed)` runs only when
 *   the new file is valid and differs from the current config, with the
 *   top-level keys that changed, and `current()` returns `next` from then on.
 * - A bad file never replaces a good config: the error is reported once per
 *   distinct file content (`onError`) and the previous config stays in force.
 *   An empty file on reload is ignored (editors truncate before writing);
 *   only at start-up does an empty file mean "all defaults".
 * - Reloading never restarts anything by itself; what a change does is up
 *   to `onChange` (see runtime.ts), so state (caches, queues, the lease) is
 *   kept.
 */
import { type FSWatcher, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import type { Logger } from "pino";
import type { Clock, Timer } from "../util/clock.ts";
import { systemClock } from "../util/clock.ts";
import { ConfigError, changedKeys, parseConfig, readConfigText } from "./load.ts";
import type { OperatorConfig } from "./schema.ts";

export interface ConfigWatcherOptions {
  path: string;
  onChange: (
    next: OperatorConfig,
    prev: OperatorConfig,
    changed: (keyof OperatorConfig)[],
  ) => void | Promise<void>;
  onError?: (err: ConfigError) => void;
  logger?: Logger;
  clock?: Clock;
  /** Wait this long after the last file event before reading (default 100 ms). */
  debounceMs?: number;
  /** Also check the file this often (default 5 s; 0 disables). */
  pollIntervalMs?: number;
}

export interface ConfigWatcher {
  current(): OperatorConfig;
  /** Re-reads the file now; resolves true if the config changed. */
  reload(): Promise<boolean>;
  close(): void;
}

/** Loads the file (throwing ConfigError if it is invalid) and watches it. */
export function watchConfig(options: ConfigWatcherOptions): ConfigWatcher {
  const path = resolve(options.path);
  const clock = options.clock ?? systemClock;
  const log = options.logger?.child({ component: "config", file: path });
  const debounceMs = options.debounceMs ?? 100;
  const pollMs = options.pollIntervalMs ?? 5000;

  let lastText = readConfigText(path);
  let config = parseConfig(lastText, path);
  let lastBadText: string | undefined;
  let chain: Promise<boolean> = Promise.resolve(false);
  let debounce: Timer | undefined;
  let poll: Timer | undefined;
  let closed = false;
  let watcher: FSWatcher | undefined;

  async function reloadOnce(): Promise<boolean> {
    if (closed) return false;
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      // Mid-swap (ConfigMap symlink flip) the file can be briefly missing: try again on the next event/poll.
      log?.debug({ err: String(err) }, "config file not readable right now");
      return false;
    }
    if (text === lastText) return false;
    // A writer truncates before it writes: an empty file seen on reload is a transient state, not a config.
    if (text.trim() === "") return false;
    let next: OperatorConfig;
    try {
      next = parseConfig(text, path);
    } catch (err) {
      if (text !== lastBadText) {
        lastBadText = text;
        const e = err instanceof ConfigError ? err : new ConfigError(path, [String(err)]);
        log?.error({ problems: e.problems }, "config reload rejected; keeping the previous config");
        options.onError?.(e);
      }
      return false;
    }
    lastText = text;
    lastBadText = undefined;
    const prev = config;
    const changed = changedKeys(prev, next);
    if (changed.length === 0) return false;
    config = next;
    log?.info({ changed }, "config reloaded");
    try {
      await options.onChange(next, prev, changed);
    } catch (err) {
      log?.error({ err }, "applying the reloaded config failed");
    }
    return true;
  }

  function reload(): Promise<boolean> {
    chain = chain.then(reloadOnce, reloadOnce);
    return chain;
  }

  function schedule(): void {
    if (closed) return;
    debounce?.cancel();
    debounce = clock.setTimer(() => void reload(), debounceMs);
  }

  function schedulePoll(): void {
    if (closed || pollMs <= 0) return;
    poll = clock.setTimer(() => {
      void reload().finally(schedulePoll);
    }, pollMs);
  }

  const file = basename(path);
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
      if (!name || name === file || name === "..data" || name.startsWith("..")) schedule();
    });
    watcher.on("error", (err) =>
      log?.warn({ err: String(err) }, "watching the config directory failed; polling only"),
    );
  } catch (err) {
    log?.warn({ err: String(err) }, "cannot watch the config directory; polling only");
  }
  schedulePoll();

  return {
    current: () => config,
    reload,
    close() {
      closed = true;
      debounce?.cancel();
      poll?.cancel();
      watcher?.close();
    },
  };
}
