/**
 * A proxyless client's snapshot, kept per service instead of as one
 * namespace-wide object: a proxyless client may dial every gRPC service of
 * the mesh, so its snapshot holds four resources per service, and
 * regenerating it whole for a change of one service cost 300–500 ms at
 * 10,000 services. Here each service's part is generated on its own (the
 * generators over a push context scoped to that service), cached with
 * what it read, and the snapshot is the union of the parts, updated by
 * replacing only the parts a change reached.
 *
 * Each part is a complete configuration for its service (its routes'
 * clusters are in it, and their endpoints), so each is checked with
 * `consistent()` on its own, and the union of consistent parts is
 * consistent.
 */
import { compareStrings } from "./generate/canonical.ts";
import type { IndexedSnapshot } from "./snapshot_diff.ts";
import {
  type ProxySnapshot,
  type Resource,
  RESOURCE_KINDS,
  type ResourceKind,
} from "./generate/model.ts";

/** What a part contributes of one kind, by name, with how many parts contribute it. */
type Held = Map<string, { resource: Resource; count: number }>;

/** Two parts built different resources under one name: a generator bug. */
export class PartConflictError extends Error {}

/** One state of a {@link PartedSnapshot}: its lists are sorted on first read. */
function indexedSnapshot(
  byName: ReadonlyMap<ResourceKind, ReadonlyMap<string, Resource>>,
  previous: IndexedSnapshot["previous"],
): IndexedSnapshot {
  const snapshot = { byName, previous } as IndexedSnapshot;
  for (const kind of RESOURCE_KINDS) {
    let list: Resource[] | null = null;
    Object.defineProperty(snapshot, kind, {
      enumerable: true,
      get: () =>
        list ??= [...byName.get(kind)!.values()].sort((a, b) => compareStrings(a.name, b.name)),
    });
  }
  // The index and the link back are for the stream servers, not part of the configuration.
  Object.defineProperty(snapshot, "byName", { enumerable: false });
  Object.defineProperty(snapshot, "previous", { enumerable: false });
  return snapshot;
}

/** The union of per-service parts; see the module comment. */
export class PartedSnapshot {
  readonly #parts = new Map<string, ProxySnapshot>();
  readonly #held = new Map<ResourceKind, Held>(RESOURCE_KINDS.map((k) => [k, new Map()]));
  /** Resources by name per kind, shared by the states until a kind changes. */
  #byName = new Map<ResourceKind, Map<string, Resource>>(
    RESOURCE_KINDS.map((k) => [k, new Map()]),
  );
  #snapshot: IndexedSnapshot = indexedSnapshot(this.#byName, null);

  /** The union of the parts. A new object after every change that changed a resource. */
  get snapshot(): IndexedSnapshot {
    return this.#snapshot;
  }

  /** The keys of the parts held. */
  keys(): IterableIterator<string> {
    return this.#parts.keys();
  }

  /** The part under `key`, if held. */
  part(key: string): ProxySnapshot | undefined {
    return this.#parts.get(key);
  }

  /**
   * Puts `next` in place of each part under its key (`null`: drops it).
   * Throws {@link PartConflictError}, changing nothing, when a resource
   * would differ from another part's resource of the same name.
   */
  replace(next: ReadonlyMap<string, ProxySnapshot | null>): void {
    const changed = new Map<ResourceKind, Set<string>>(RESOURCE_KINDS.map((k) => [k, new Set()]));
    const undo: (() => void)[] = [];
    try {
      // Every old part out before any new one comes in: parts share resources (a route's split
      // to another service carries that service's cluster), and both may be changing.
      const replaced = [...next].filter(([key, part]) => this.#parts.get(key) !== part);
      for (const [key] of replaced) {
        const old = this.#parts.get(key);
        if (!old) continue;
        this.#remove(old, changed, undo);
        this.#parts.delete(key);
        undo.push(() => this.#parts.set(key, old));
      }
      for (const [key, part] of replaced) {
        if (!part) continue;
        this.#add(part, changed, undo);
        this.#parts.set(key, part);
        undo.push(() => this.#parts.delete(key));
      }
    } catch (error) {
      for (const step of undo.reverse()) step();
      throw error;
    }
    this.#publish(changed);
  }

  #add(part: ProxySnapshot, changed: Map<ResourceKind, Set<string>>, undo: (() => void)[]): void {
    for (const kind of RESOURCE_KINDS) {
      const held = this.#held.get(kind)!;
      for (const r of part[kind]) {
        const entry = held.get(r.name);
        if (entry) {
          if (entry.resource.version !== r.version) {
            throw new PartConflictError(
              `Generators built two different ${kind} resources named "${r.name}"`,
            );
          }
          entry.count++;
          undo.push(() => entry.count--);
        } else {
          held.set(r.name, { resource: r, count: 1 });
          changed.get(kind)!.add(r.name);
          undo.push(() => held.delete(r.name));
        }
      }
    }
  }

  #remove(
    part: ProxySnapshot,
    changed: Map<ResourceKind, Set<string>>,
    undo: (() => void)[],
  ): void {
    for (const kind of RESOURCE_KINDS) {
      const held = this.#held.get(kind)!;
      for (const r of part[kind]) {
        const entry = held.get(r.name)!;
        entry.count--;
        if (entry.count === 0) {
          held.delete(r.name);
          changed.get(kind)!.add(r.name);
          undo.push(() => {
            entry.count++;
            held.set(r.name, entry);
          });
        } else undo.push(() => entry.count++);
      }
    }
  }

  /**
   * A new state when names changed. The index of a changed kind is updated
   * in place, so the state before sees it too: a stream still holding that
   * state reads the newest resources, which the push is about to send it
   * anyway. Costs what changed, not what the union holds.
   */
  #publish(changed: Map<ResourceKind, Set<string>>): void {
    const changes = new Map<ResourceKind, Set<string>>();
    for (const kind of RESOURCE_KINDS) {
      const names = changed.get(kind)!;
      const index = this.#byName.get(kind)!;
      const held = this.#held.get(kind)!;
      const moved = new Set<string>();
      for (const name of names) {
        const now = held.get(name)?.resource;
        const was = index.get(name);
        if (now === was) continue;
        if (now) index.set(name, now);
        else index.delete(name);
        if (now?.version !== was?.version) moved.add(name);
      }
      changes.set(kind, moved);
    }
    if ([...changes.values()].every((names) => names.size === 0)) return;
    this.#snapshot = indexedSnapshot(this.#byName, {
      snapshot: new WeakRef(this.#snapshot),
      changes,
    });
  }
}
