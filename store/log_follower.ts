/**
 * Follows a shared store's revision log (`RevisionLog` in `store.ts`): woken
 * by its notifications, it reads by revision from the last one it applied,
 * so an entry committed while the notification channel was down, or while
 * this replica was restarting, is still read once the channel is back. One
 * read runs at a time; wakes that arrive meanwhile cost one more read, not
 * one each, so a burst of writes on other replicas is applied in pages.
 *
 * A notification can be lost without the connection looking dead (a proxy
 * in between, a half-open socket until the listener's ping notices), so
 * the follower also reads every {@link FollowerOptions.pollMs}: a missed
 * wake delays an entry by at most that long, never loses it.
 */
import type { LogEntry, RevisionLog } from "./store.ts";

/** What the follower does with what it reads. */
export interface FollowerHandlers {
  /** Applies entries in revision order; a throw is logged and the same entries are read again. */
  apply(entries: LogEntry[]): Promise<void>;
  /**
   * Entries after the last applied revision are gone from the log (pruned
   * while this replica was cut off): rebuild everything from the store.
   */
  reload(): Promise<void>;
  /** A read or an apply failed; the follower retries after {@link FollowerOptions.retryMs}. */
  failed(error: unknown): void;
}

/** Options of {@link LogFollower}. */
export interface FollowerOptions {
  /** Entries read per round trip. Default: 500. */
  pageSize?: number;
  /** Read this often even without a wake. Default: 5 s. */
  pollMs?: number;
  /** Wait this long after a failed read before the next. Default: 1 s. */
  retryMs?: number;
}

/** See the module comment. */
export class LogFollower {
  readonly #log: RevisionLog;
  readonly #handlers: FollowerHandlers;
  readonly #pageSize: number;
  readonly #pollMs: number;
  readonly #retryMs: number;
  #applied = 0;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = true;
  #unwatch: () => void = () => {};
  #poll: ReturnType<typeof setInterval> | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;

  constructor(log: RevisionLog, handlers: FollowerHandlers, options: FollowerOptions = {}) {
    this.#log = log;
    this.#handlers = handlers;
    this.#pageSize = options.pageSize ?? 500;
    this.#pollMs = options.pollMs ?? 5_000;
    this.#retryMs = options.retryMs ?? 1_000;
  }

  /** The last revision applied (or skipped as this replica's own). */
  get applied(): number {
    return this.#applied;
  }

  /**
   * Starts following after revision `after`: the log's head read before
   * this replica loaded its state, so nothing between that load and now is
   * missed (an entry applied twice is harmless, see `RevisionLog`).
   */
  start(after: number): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#applied = after;
    this.#unwatch = this.#log.watch(() => this.wake());
    this.#poll = setInterval(() => this.wake(), this.#pollMs);
    this.wake();
  }

  /** Reads what is new now (or once the running read ends). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#retry);
    this.#running = this.#drain().finally(() => {
      this.#running = null;
      if (this.#again) this.wake();
    });
  }

  /** Stops following and waits for the read in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unwatch();
    clearInterval(this.#poll);
    clearTimeout(this.#retry);
    await this.#running;
  }

  /** Reads and applies pages until one comes back short. */
  async #drain(): Promise<void> {
    this.#again = false;
    try {
      while (!this.#stopped) {
        const page = await this.#log.read(this.#applied, this.#pageSize);
        if (page.gap) {
          await this.#handlers.reload();
          this.#applied = page.head;
          continue;
        }
        if (page.entries.length > 0) {
          await this.#handlers.apply(page.entries);
          this.#applied = page.entries.at(-1)!.revision;
        }
        if (page.entries.length < this.#pageSize) return;
      }
    } catch (error) {
      this.#handlers.failed(error);
      if (!this.#stopped) this.#retry = setTimeout(() => this.wake(), this.#retryMs);
    }
  }
}
