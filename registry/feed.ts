/**
 * The registry's change feed: the current revision, and ways to wait for the
 * next one without polling (Consul-style blocking queries and server-sent
 * events both sit on it). Waiters are woken once per published revision, not
 * per object, so a burst of writes costs each watcher one wake-up.
 */
export class ChangeFeed {
  #revision = 0;
  #closed = false;
  readonly #waiters = new Set<() => void>();
  readonly #subscribers = new Set<(revision: number) => void>();

  /** The latest published revision. */
  get revision(): number {
    return this.#revision;
  }

  /** How many blocking queries and subscriptions are open (the watch-count metric). */
  get watchers(): number {
    return this.#waiters.size + this.#subscribers.size;
  }

  /** Announces a new revision; lower or equal revisions are ignored. */
  publish(revision: number): void {
    if (revision <= this.#revision) return;
    this.#revision = revision;
    for (const wake of [...this.#waiters]) wake();
    for (const fn of [...this.#subscribers]) fn(revision);
  }

  /**
   * Resolves with the revision as soon as it is greater than `index`, or when
   * `timeoutMs` passes, the signal aborts or the feed closes — whichever is first.
   */
  wait(index: number, timeoutMs: number, signal?: AbortSignal): Promise<number> {
    if (this.#revision > index || this.#closed || signal?.aborted) {
      return Promise.resolve(this.#revision);
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve(this.#revision);
      };
      const timer = setTimeout(done, timeoutMs);
      this.#waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /** Calls `fn` with every new revision until the returned function is called. */
  subscribe(fn: (revision: number) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }

  /** Wakes every waiter and refuses new waits; used at shutdown so no request hangs. */
  close(): void {
    this.#closed = true;
    for (const wake of [...this.#waiters]) wake();
    for (const fn of [...this.#subscribers]) fn(this.#revision);
    this.#subscribers.clear();
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }
}
