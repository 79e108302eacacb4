/**
 * A keyed change event (Istio's `ConfigUpdate` with its set of changed
 * configs): what a registry, policy or CA write changed, named by key, so
 * that the push pipeline recomputes what those keys feed and nothing else.
 *
 * It is plain data on purpose: a local write emits it, and a replica
 * following another's writes through the shared store's revision log can
 * build the same event from the log's keys. It names keys, never values: a
 * consumer re-reads what it needs, so applying an event twice, or after a
 * later write to the same key, is harmless.
 */

/** What changed in the mesh, by key. Every list is sorted and holds each key once. */
export interface MeshChange {
  /**
   * Services (`namespace/name`) whose instances changed: added, removed,
   * health, address, ports or labels. A node's locality or certificate
   * reaches its instances' endpoints too: a consumer that indexes instances
   * by node follows {@link MeshChange.nodes} there.
   */
  readonly endpoints: readonly string[];
  /** Services (`namespace/name`) declared, removed, or whose ports or labels changed. */
  readonly services: readonly string[];
  /** Nodes whose registration (labels, upstreams, instances behind the sidecar) or certificate changed. */
  readonly nodes: readonly string[];
  /** Policies written or deleted, by `policyKey()` (MeshConfig's namespace is `""`). */
  readonly policies: readonly string[];
  /** The trust bundle changed (a root rotation stage). */
  readonly trust: boolean;
  /** MeshConfig was written or deleted (it is among {@link MeshChange.policies} too). */
  readonly meshConfig: boolean;
}

/** The parts of a {@link MeshChange} a writer names; the rest is empty. */
export type MeshChangeParts = { -readonly [K in keyof MeshChange]?: MeshChange[K] };

const MESH_CONFIG_PREFIX = "MeshConfig/";

/** A change from its parts: lists sorted and deduplicated, `meshConfig` set when a MeshConfig is among the policies. */
export function meshChange(parts: MeshChangeParts): MeshChange {
  const policies = sortedSet(parts.policies);
  return {
    endpoints: sortedSet(parts.endpoints),
    services: sortedSet(parts.services),
    nodes: sortedSet(parts.nodes),
    policies,
    trust: parts.trust ?? false,
    meshConfig: (parts.meshConfig ?? false) ||
      policies.some((k) => k.startsWith(MESH_CONFIG_PREFIX)),
  };
}

/** Every key of `a` and of `b`: what a debounce window changed in all. */
export function mergeChanges(a: MeshChange, b: MeshChange): MeshChange {
  return meshChange({
    endpoints: [...a.endpoints, ...b.endpoints],
    services: [...a.services, ...b.services],
    nodes: [...a.nodes, ...b.nodes],
    policies: [...a.policies, ...b.policies],
    trust: a.trust || b.trust,
    meshConfig: a.meshConfig || b.meshConfig,
  });
}

/** True when `change` names nothing. */
export function isEmptyChange(change: MeshChange): boolean {
  return change.endpoints.length === 0 && change.services.length === 0 &&
    change.nodes.length === 0 && change.policies.length === 0 && !change.trust &&
    !change.meshConfig;
}

/** Nothing changed. */
export const NO_CHANGE: MeshChange = meshChange({});

function sortedSet(keys: readonly string[] | undefined): string[] {
  if (!keys || keys.length === 0) return [];
  return [...new Set(keys)].sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
}
