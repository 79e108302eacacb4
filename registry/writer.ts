/**
 * What every registry write shares: the store, one lock per object so that
 * writes to one node or service never interleave, the commit that bumps the
 * revision feed and tells subscribers which keys changed, and the rules of
 * write preconditions and content comparison.
 */
import type { Clock } from "../core/clock.ts";
import { NotFoundError, UnavailableError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { isEmptyChange, type MeshChange } from "../core/mesh_change.ts";
import type { Instance, MeshNode, Service } from "../core/model.ts";
import type { Expectation, Fence, Store, Write } from "../store/store.ts";
import { changeOfWrites } from "./changes.ts";
import { ChangeFeed } from "./feed.ts";

/** Preconditions of a write, from `If-Match` / `If-None-Match: *`. */
export interface WritePreconditions {
  ifMatch?: number;
  ifNoneMatch?: boolean;
}

/** The store and the rules every registry write goes through. */
export class RegistryWriter {
  readonly feed = new ChangeFeed();
  readonly store: Store;
  readonly clock: Clock;
  readonly log: Logger;
  /** The lease the sweep's writes must hold (`RegistryOptions.fence`). */
  sweepFence: () => Fence | undefined = () => undefined;
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #listeners = new Set<(change: MeshChange) => void>();
  #stopped = false;

  constructor(store: Store, clock: Clock, log: Logger) {
    this.store = store;
    this.clock = clock;
    this.log = log;
  }

  /** Refuses later writes and waits for the running ones. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.allSettled([...this.#locks.values()]);
  }

  /** Every object of a kind, a page at a time. */
  async *all<K extends "node" | "instance" | "service">(kind: K) {
    let after: string | undefined;
    while (true) {
      const page = await this.store.list(kind, { limit: 1000, ...(after ? { after } : {}) });
      yield* page;
      if (page.length < 1000) return;
      after = keyOfAny(page.at(-1)!);
    }
  }

  /** Runs `fn` after every earlier call for the same key, so writes to one object never interleave. */
  serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => {});
    this.#locks.set(key, tail);
    tail.then(() => {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    });
    return next;
  }

  /**
   * Calls `listener` with the keys of every committed change, after the
   * feed has its revision. Returns the function that stops it.
   */
  subscribe(listener: (change: MeshChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Commits `writes`; `gone` are the instances it deletes, so the change
   * names their services. `fence`: the lease a leader's duty must still
   * hold at commit (`Batch.fence`).
   */
  async commit(
    writes: Write[],
    expect: Expectation[] = [],
    gone: readonly Instance[] = [],
    fence?: Fence,
  ): Promise<number> {
    if (this.#stopped) throw new UnavailableError("The server is shutting down");
    const before = this.feed.revision;
    const revision = await this.store.commit({ writes, expect, ...(fence ? { fence } : {}) });
    if (revision !== before) {
      this.feed.publish(revision);
      const change = changeOfWrites(writes, gone);
      for (const listener of this.#listeners) listener(change);
    }
    return revision;
  }

  /** Publishes a revision another replica committed and tells subscribers what it changed. */
  publishRemote(revision: number, change: MeshChange): void {
    this.feed.publish(revision);
    if (isEmptyChange(change)) return;
    for (const listener of this.#listeners) listener(change);
  }

  /** `ms` (default: now) as an ISO 8601 timestamp. */
  iso(ms = this.clock.now()): string {
    return new Date(ms).toISOString();
  }
}

/**
 * The store expectation of a write to `kind`/`key`: the caller's
 * precondition when given, else that the object is still as read.
 */
export function expectation(
  kind: "service" | "node" | "instance",
  key: string,
  existing: { revision: number } | null,
  pre: WritePreconditions,
): Expectation[] {
  if (pre.ifNoneMatch) return [{ kind, key, revision: null }];
  if (pre.ifMatch !== undefined) {
    if (!existing) throw new NotFoundError(`The ${kind} "${key}" does not exist`);
    return [{ kind, key, revision: pre.ifMatch }];
  }
  return existing ? [{ kind, key, revision: existing.revision }] : [{ kind, key, revision: null }];
}

/** The local id (unique on its node) of instance `id` (`<local id>@<node>`). */
export function localIdOf(id: string): string {
  return id.slice(0, id.lastIndexOf("@"));
}

/** The key an object is listed under. */
function keyOfAny(v: Service | MeshNode | Instance): string {
  if ("id" in v) return v.id;
  if ("hostname" in v) return v.name;
  return `${v.namespace}/${v.name}`;
}

/** Labels with their keys in order, so that equal label sets serialize alike. */
export function sortKeys(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0));
}

/** True when two objects are equal apart from their revision and the named fields. */
export function sameContent(a: object, b: object, ignore: string[] = []): boolean {
  const strip = (o: object) => {
    const copy: Record<string, unknown> = { ...o };
    delete copy.revision;
    for (const k of ignore) delete copy[k];
    return JSON.stringify(copy);
  };
  return strip(a) === strip(b);
}
