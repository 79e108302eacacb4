/**
 * The push debounce (Istio's): changes are merged until they pause for
 * `debounceMs`, but never held longer than `maxDelayMs` after the first, so
 * a steady trickle of changes still gets pushed.
 */

/** Time and timers, injected so that tests can drive them. */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The runtime's clock and timers. */
export const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/** Options of {@link Debouncer}. */
export interface DebounceOptions<T> {
  /** Joins two pending values into one. */
  merge: (a: T, b: T) => T;
  /** Called with the merged value and the time of the first change it holds. */
  fire: (value: T, firstAt: number) => void;
  /** The current quiet period and maximum delay, read at each change (MeshConfig may set them). */
  timing: () => { debounceMs: number; maxDelayMs: number };
  /** Default: {@link systemTimers}. */
  timers?: Timers;
}

/** Merges values and fires once they pause; see the module comment. */
export class Debouncer<T> {
  readonly #options: DebounceOptions<T>;
  readonly #timers: Timers;
  #pending: { value: T; firstAt: number } | null = null;
  #handle: unknown = null;
  #stopped = false;

  constructor(options: DebounceOptions<T>) {
    this.#options = options;
    this.#timers = options.timers ?? systemTimers;
  }

  /** Adds a value; (re)starts the wait. */
  add(value: T): void {
    if (this.#stopped) return;
    const now = this.#timers.now();
    if (this.#pending) {
      this.#pending.value = this.#options.merge(this.#pending.value, value);
      this.#timers.clearTimeout(this.#handle);
    } else {
      this.#pending = { value, firstAt: now };
    }
    const { debounceMs, maxDelayMs } = this.#options.timing();
    const wait = Math.max(0, Math.min(debounceMs, this.#pending.firstAt + maxDelayMs - now));
    this.#handle = this.#timers.setTimeout(() => this.flush(), wait);
  }

  /** Fires now what is pending, if anything. */
  flush(): void {
    if (this.#handle !== null) this.#timers.clearTimeout(this.#handle);
    this.#handle = null;
    const pending = this.#pending;
    this.#pending = null;
    if (pending) this.#options.fire(pending.value, pending.firstAt);
  }

  /** Drops what is pending; later values are ignored. */
  stop(): void {
    this.#stopped = true;
    if (this.#handle !== null) this.#timers.clearTimeout(this.#handle);
    this.#handle = null;
    this.#pending = null;
  }
}
