/**
 * A probe's cancellation: its deadline passed, or its target was changed or
 * removed. A one-listener stand-in for AbortController, which costs several
 * microseconds per probe through EventTarget; probes run tens of thousands of
 * times a second and each has exactly one listener at a time.
 */
export class ProbeSignal {
  aborted = false;
  reason: unknown = undefined;
  /** Set by the running probe while it holds a socket or call to tear down. */
  onabort: (() => void) | undefined = undefined;

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const f = this.onabort;
    this.onabort = undefined;
    f?.();
  }
}
