/**
 * What changed between two snapshots of a proxy, per resource kind, by name:
 * what a push tells each stream so that a stream subscribing to none of the
 * changed names costs a set lookup per type. Snapshots the size of a whole
 * mesh carry their own changes (`IndexedSnapshot`), so no list is compared.
 *
 * @module
 */
import { compareStrings } from "./generate/canonical.ts";
import {
  type ProxySnapshot,
  type Resource,
  RESOURCE_KINDS,
  type ResourceKind,
} from "./generate/model.ts";

/** Per kind, the names whose resource was added, removed or changed between two snapshots. */
export type SnapshotDiff = ReadonlyMap<ResourceKind, ReadonlySet<string>>;

/**
 * A snapshot that can say, without comparing lists, what changed since the
 * one before it, and look resources up by name: what the stream servers
 * need of a snapshot the size of a whole mesh, where any pass over every
 * resource costs milliseconds (a proxyless client's, `proxyless_snapshot.ts`).
 */
export interface IndexedSnapshot extends ProxySnapshot {
  /** Resources by kind and name. */
  readonly byName: ReadonlyMap<ResourceKind, ReadonlyMap<string, Resource>>;
  /** The snapshot this one replaced (while it is alive), and the names that changed since. */
  readonly previous: { snapshot: WeakRef<ProxySnapshot>; changes: SnapshotDiff } | null;
}

export function isIndexed(snapshot: ProxySnapshot): snapshot is IndexedSnapshot {
  return "byName" in snapshot;
}

/**
 * What changed from `before` to `after` when `after` descends from it by a
 * few {@link IndexedSnapshot.previous} links: the union of their changes.
 * `null` when it does not (then the lists are compared).
 */
export function chainedDiff(before: ProxySnapshot, after: ProxySnapshot): SnapshotDiff | null {
  const steps: SnapshotDiff[] = [];
  let at: ProxySnapshot | undefined = after;
  while (at !== before) {
    if (!at || !isIndexed(at) || !at.previous || steps.length >= 8) return null;
    steps.push(at.previous.changes);
    at = at.previous.snapshot.deref();
  }
  if (steps.length === 1) return steps[0]!;
  const out = new Map<ResourceKind, Set<string>>();
  for (const kind of RESOURCE_KINDS) {
    out.set(kind, new Set(steps.flatMap((s) => [...s.get(kind) ?? []])));
  }
  return out;
}

/** Per kind, the names added, removed or changed: a merge of the two name-sorted lists. */
export function diffSnapshots(before: ProxySnapshot, after: ProxySnapshot): SnapshotDiff {
  const out = new Map<ResourceKind, Set<string>>();
  for (const kind of RESOURCE_KINDS) {
    const a = before[kind];
    const b = after[kind];
    const names = new Set<string>();
    if (a !== b) {
      let i = 0;
      let j = 0;
      while (i < a.length || j < b.length) {
        const x = a[i];
        const y = b[j];
        const order = !x ? 1 : !y ? -1 : compareStrings(x.name, y.name);
        if (order < 0) names.add(x!.name), i++;
        else if (order > 0) names.add(y!.name), j++;
        else {
          if (x !== y && x!.version !== y!.version) names.add(x!.name);
          i++;
          j++;
        }
      }
    }
    out.set(kind, names);
  }
  return out;
}

/** True when a subscription (`*` or names) covers one of `changed`. */
export function touches(names: ReadonlySet<string> | "*", changed: ReadonlySet<string>): boolean {
  if (changed.size === 0) return false;
  if (names === "*") return true;
  const [small, large] = names.size <= changed.size ? [names, changed] : [changed, names];
  for (const n of small) if (large.has(n)) return true;
  return false;
}
