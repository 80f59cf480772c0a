/**
 * Transitions as an async iterator, for a consumer loop such as
 * `for await (const t of stream) ...`. Pass `push` as the engine's
 * `onTransition`. Transitions are rare (verdict changes only), so the buffer
 * is plain; `close()` ends the iteration.
 */
import type { Transition } from "./types.ts";

export interface TransitionStream extends AsyncIterable<Transition> {
  push(t: Transition): void;
  close(): void;
  readonly buffered: number;
}

export function transitionStream(): TransitionStream {
  const buffer: Transition[] = [];
  let waiting: ((r: IteratorResult<Transition>) => void) | undefined;
  let closed = false;
  return {
    push(t) {
      if (closed) return;
      if (waiting) {
        const w = waiting;
        waiting = undefined;
        w({ value: t, done: false });
      } else {
        buffer.push(t);
      }
    },
    close() {
      closed = true;
      waiting?.({ value: undefined, done: true });
      waiting = undefined;
    },
    get buffered() {
      return buffer.length;
    },
    [Symbol.asyncIterator]() {
      return {
        next: () => {
          const t = buffer.shift();
          if (t) return Promise.resolve({ value: t, done: false });
          if (closed) return Promise.resolve({ value: undefined, done: true });
          return new Promise((resolve) => {
            waiting = resolve;
          });
        },
      };
    },
  };
}
