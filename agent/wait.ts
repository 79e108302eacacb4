/**
 * Waiting that ends early: on shutdown (an `AbortSignal`) and, for the
 * heartbeat loop, when a check changes status. Every timer and listener is
 * released when the wait ends, so nothing outlives a stopped agent.
 */

/** Resolves after `ms` milliseconds, or as soon as `signal` aborts; never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * A latch that cuts a wait short. A `notify()` that comes while nobody waits
 * is kept, so a change that lands during a request is not lost.
 */
export class Wakeup {
  #pending = false;
  #wake: (() => void) | undefined;

  /** Ends the current wait, or the next one if none is running. */
  notify(): void {
    this.#pending = true;
    this.#wake?.();
  }

  /**
   * Waits up to `ms` milliseconds; returns `true` when woken by
   * {@link notify} (including one that came before the call).
   */
  async wait(ms: number, signal?: AbortSignal): Promise<boolean> {
    if (!this.#pending) {
      const woken = new AbortController();
      this.#wake = () => woken.abort();
      const both = signal ? AbortSignal.any([signal, woken.signal]) : woken.signal;
      await sleep(ms, both);
      this.#wake = undefined;
    }
    const woke = this.#pending;
    this.#pending = false;
    return woke;
  }
}
