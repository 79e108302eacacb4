/**
 * The mesh as the push pipeline sees it, held in memory: loaded from the
 * store once at start, then kept current by keyed change events
 * (`core/mesh_change.ts`), each re-reading only the keys it names. A push
 * used to read the whole store (a million-row limit) for a change of one
 * endpoint.
 *
 * Applying a change says which inputs of generation actually moved, as
 * dependency keys (see {@link Dep}); the resource cache drops exactly what
 * was built from those. {@link loadMeshView} is the from-scratch reading
 * that the incremental one must always equal; tests compare the two.
 */
import { type MeshChange, meshChange } from "../core/mesh_change.ts";
import type { Instance, MeshNode, Service } from "../core/model.ts";
import type { AnyPolicy, PolicyKind, PolicySet } from "../core/policy/model.ts";
import { policyKey, policySet } from "../core/policy/model.ts";
import type { Store } from "../store/store.ts";
import { compareStrings } from "./generate/canonical.ts";
import type {
  InboundEntry,
  Locality,
  MeshEndpoint,
  MeshService,
  MeshView,
  SidecarRequest,
  UpstreamEntry,
} from "./generate/model.ts";
import { compareEndpoints, serviceKey } from "./generate/push_context.ts";

/** What a node's sidecar asks for, from its registration: {@link SidecarRequest} without the caller. */
export type SidecarSetup = Pick<SidecarRequest, "hostAddress" | "inbound" | "upstreams">;

/** The trust domain and the bundle PEM the mesh trusts now. */
export interface Trust {
  trustDomain: string;
  bundlePem: string;
}

/**
 * An input of generation that a change can move, by key:
 * `svc:<ns>/<name>` a service's declaration, `ep:<ns>/<name>` its
 * endpoints, `services` the set and order of services, `node:<name>` a
 * node's sidecar setup and locality, `pol:<kind>:<ns>/<service>` (or
 * `pol:AuthorizationPolicy:<ns>/` for namespace-wide ones) the policies of
 * one kind indexed under that key (see {@link policyDep}), `policies`
 * the whole policy set, `mesh` MeshConfig, `trust` the trust domain and
 * bundle.
 */
export type Dep = string;

/** Where a node without `region` and `zone` labels runs, as far as routing goes. */
export const NO_LOCALITY: Locality = { region: "", zone: "" };

/** A sidecar on a node the registry does not know (yet): nothing to serve or reach. */
export const UNREGISTERED: SidecarSetup = { hostAddress: "0.0.0.0", inbound: [], upstreams: [] };

/** A node's locality, from its `region` and `zone` labels. */
function localityOf(labels: Readonly<Record<string, string>> | undefined): Locality {
  return { region: labels?.["region"] ?? "", zone: labels?.["zone"] ?? "" };
}

/** Every row the view is made of, as read from the store. */
interface Rows {
  services: Service[];
  instances: Instance[];
  nodes: MeshNode[];
  /** Each node's identity: the SPIFFE ID of its newest current certificate. */
  identities: Map<string, string>;
  policies: AnyPolicy[];
}

async function readAll(store: Store, at: Date): Promise<Rows> {
  const all = { limit: Number.MAX_SAFE_INTEGER };
  const [services, instances, nodes, certificates, policies] = await Promise.all([
    store.list("service", all),
    store.list("instance", all),
    store.list("node", all),
    store.listCertificates({ current: true, liveAt: at.toISOString() }),
    store.listPolicies(),
  ]);
  // Oldest first: the newest certificate of a node wins.
  const identities = new Map(certificates.map((c) => [c.node, c.identity]));
  return { services, instances, nodes, identities, policies };
}

/**
 * The mesh from a full read of `store`, as a {@link MeshView} with each
 * node's sidecar setup and locality: what the incremental view must equal.
 */
export async function loadMeshView(
  store: Store,
  trust: Trust,
  at = new Date(),
): Promise<MeshState> {
  const state = new MeshState(trust);
  state.reset(await readAll(store, at));
  return state;
}

/** The in-memory mesh; see the module comment. */
export class MeshState {
  #trust: Trust;
  readonly #services = new Map<string, MeshService>();
  readonly #instances = new Map<string, Instance>();
  /** Instance ids by service key and by node. */
  readonly #byService = new Map<string, Set<string>>();
  readonly #byNode = new Map<string, Set<string>>();
  readonly #nodes = new Map<string, MeshNode>();
  readonly #identities = new Map<string, string>();
  readonly #policies = new Map<string, AnyPolicy>();
  readonly #endpoints = new Map<string, MeshEndpoint[]>();
  readonly #sidecars = new Map<string, SidecarSetup>();
  readonly #localities = new Map<string, Locality>();
  #sortedServices: MeshService[] | null = null;
  #policySet: PolicySet | null = null;

  constructor(trust: Trust) {
    this.#trust = trust;
  }

  /** Replaces everything with `rows`. */
  reset(rows: Rows): void {
    for (
      const map of [
        this.#services,
        this.#instances,
        this.#byService,
        this.#byNode,
        this.#nodes,
        this.#identities,
        this.#policies,
        this.#endpoints,
        this.#sidecars,
        this.#localities,
      ]
    ) map.clear();
    for (const s of rows.services) {
      this.#services.set(serviceKey(s.name, s.namespace), meshService(s));
    }
    for (const n of rows.nodes) this.#nodes.set(n.name, n);
    for (const [node, identity] of rows.identities) this.#identities.set(node, identity);
    for (const i of rows.instances) this.#addInstance(i);
    for (const p of rows.policies) this.#policies.set(keyOfPolicy(p), p);
    for (const key of this.#byService.keys()) this.#rebuildEndpoints(key);
    for (const node of new Set([...this.#nodes.keys(), ...this.#byNode.keys()])) {
      this.#rebuildNode(node);
    }
    this.#sortedServices = null;
    this.#policySet = null;
  }

  /** The trust domain and bundle. */
  get trust(): Trust {
    return this.#trust;
  }

  /** Services sorted by namespace, then name. */
  get services(): readonly MeshService[] {
    return this.#sortedServices ??= [...this.#services.values()].sort((a, b) =>
      compareStrings(a.namespace, b.namespace) || compareStrings(a.name, b.name)
    );
  }

  /** Services by key (`namespace/name`). */
  get serviceByKey(): ReadonlyMap<string, MeshService> {
    return this.#services;
  }

  /** Endpoints of each service that has instances, sorted. */
  get endpointsByService(): ReadonlyMap<string, readonly MeshEndpoint[]> {
    return this.#endpoints;
  }

  /** Every stored policy. */
  get policies(): PolicySet {
    return this.#policySet ??= policySet([...this.#policies.values()]);
  }

  /** Each registered node's sidecar setup. */
  get sidecars(): ReadonlyMap<string, SidecarSetup> {
    return this.#sidecars;
  }

  /** A node's locality ({@link NO_LOCALITY} when unknown). */
  locality(node: string): Locality {
    return this.#localities.get(node) ?? NO_LOCALITY;
  }

  /** A change naming every key the view holds, trust included. */
  keys(): MeshChange {
    return meshChange({
      services: [...this.#services.keys()],
      endpoints: [...this.#byService.keys()],
      nodes: [...this.#nodes.keys(), ...this.#byNode.keys()],
      policies: [...this.#policies.keys()],
      trust: true,
    });
  }

  /** The whole view, for a from-scratch generation (dry runs, tests). */
  view(): MeshView {
    return {
      trustDomain: this.#trust.trustDomain,
      trustBundlePem: this.#trust.bundlePem,
      services: this.services,
      endpoints: [...this.#endpoints.values()].flat(),
      policies: this.policies,
    };
  }

  /**
   * A canonical text of everything generation reads, so that two views
   * compare equal exactly when they would generate the same.
   */
  fingerprint(): string {
    const sorted = <T>(map: ReadonlyMap<string, T>) =>
      [...map].sort(([a], [b]) => compareStrings(a, b));
    return JSON.stringify({
      trust: this.#trust,
      services: this.services,
      endpoints: sorted(this.#endpoints),
      sidecars: sorted(this.#sidecars),
      localities: sorted(this.#localities),
      policies: this.policies,
    });
  }

  /**
   * Reads what `change` names from `store` and applies it. Returns the
   * dependency keys whose value moved. The reads come first; the update is
   * one synchronous step, so no generation ever sees half of a change.
   */
  async apply(store: Store, change: MeshChange, trust: Trust, at = new Date()): Promise<Set<Dep>> {
    const liveAt = at.toISOString();
    const [services, endpoints, nodes, policies] = await Promise.all([
      Promise.all(change.services.map((key) => store.get("service", key))),
      Promise.all(change.endpoints.map((key) => {
        const slash = key.indexOf("/");
        return store.list("instance", {
          namespace: key.slice(0, slash),
          service: key.slice(slash + 1),
          limit: Number.MAX_SAFE_INTEGER,
        });
      })),
      Promise.all(change.nodes.map(async (name) => {
        const [node, instances, certificates] = await Promise.all([
          store.get("node", name),
          store.list("instance", { node: name, limit: Number.MAX_SAFE_INTEGER }),
          store.listCertificates({ node: name, current: true, liveAt }),
        ]);
        return { name, node, instances, identity: certificates.at(-1)?.identity };
      })),
      Promise.all(change.policies.map((key) => {
        const [kind, namespace, name] = splitPolicyKey(key);
        return store.getPolicy(kind, namespace, name).then((p) => [key, p] as const);
      })),
    ]);
    return this.#update(change, { services, endpoints, nodes, policies, trust });
  }

  #update(
    change: MeshChange,
    read: {
      services: (Service | null)[];
      endpoints: Instance[][];
      nodes: {
        name: string;
        node: MeshNode | null;
        instances: Instance[];
        identity: string | undefined;
      }[];
      policies: (readonly [string, AnyPolicy | null])[];
      trust: Trust;
    },
  ): Set<Dep> {
    const deps = new Set<Dep>();
    const dirtyEndpoints = new Set<string>();
    const dirtyNodes = new Set<string>();

    change.services.forEach((key, i) => {
      const stored = read.services[i];
      const before = this.#services.get(key);
      const after = stored ? meshService(stored) : undefined;
      if (JSON.stringify(before) === JSON.stringify(after)) return;
      if (after) this.#services.set(key, after);
      else this.#services.delete(key);
      deps.add(`svc:${key}`);
      deps.add("services");
      this.#sortedServices = null;
    });

    // A service's instances, then a node's: both replace what is held for their key.
    change.endpoints.forEach((key, i) => {
      const now = read.endpoints[i]!;
      const held = this.#byService.get(key) ?? new Set<string>();
      const kept = new Set(now.map((inst) => inst.id));
      for (const id of held) {
        if (kept.has(id)) continue;
        const gone = this.#instances.get(id);
        if (gone) dirtyNodes.add(gone.node);
        this.#removeInstance(id);
      }
      for (const inst of now) this.#replaceInstance(inst, dirtyEndpoints, dirtyNodes);
      dirtyEndpoints.add(key);
    });
    for (const { name, node, instances, identity } of read.nodes) {
      const held = this.#byNode.get(name) ?? new Set<string>();
      const kept = new Set(instances.map((inst) => inst.id));
      for (const id of held) {
        if (kept.has(id)) continue;
        const gone = this.#instances.get(id);
        if (gone) dirtyEndpoints.add(serviceKey(gone.service, gone.namespace));
        this.#removeInstance(id);
      }
      for (const inst of instances) this.#replaceInstance(inst, dirtyEndpoints, dirtyNodes);
      const labelsBefore = JSON.stringify(localityOf(this.#nodes.get(name)?.labels));
      const identityBefore = this.#identities.get(name);
      if (node) this.#nodes.set(name, node);
      else this.#nodes.delete(name);
      if (identity !== undefined) this.#identities.set(name, identity);
      else this.#identities.delete(name);
      // Locality and identity are carried by every endpoint of the node.
      if (
        labelsBefore !== JSON.stringify(localityOf(node?.labels)) || identityBefore !== identity
      ) {
        for (const id of this.#byNode.get(name) ?? []) {
          const inst = this.#instances.get(id)!;
          dirtyEndpoints.add(serviceKey(inst.service, inst.namespace));
        }
      }
      dirtyNodes.add(name);
    }
    for (const key of dirtyEndpoints) {
      const before = JSON.stringify(this.#endpoints.get(key) ?? []);
      this.#rebuildEndpoints(key);
      if (before !== JSON.stringify(this.#endpoints.get(key) ?? [])) deps.add(`ep:${key}`);
    }
    for (const name of dirtyNodes) {
      const before = JSON.stringify([this.#sidecars.get(name), this.#localities.get(name)]);
      this.#rebuildNode(name);
      const after = JSON.stringify([this.#sidecars.get(name), this.#localities.get(name)]);
      if (before !== after) deps.add(`node:${name}`);
    }

    for (const [key, stored] of read.policies) {
      const before = this.#policies.get(key);
      if (JSON.stringify(before) === JSON.stringify(stored ?? undefined)) continue;
      if (stored) this.#policies.set(key, stored);
      else this.#policies.delete(key);
      for (const p of [before, stored]) if (p) deps.add(policyDep(p));
      deps.add("policies");
      this.#policySet = null;
    }

    if (
      read.trust.trustDomain !== this.#trust.trustDomain ||
      read.trust.bundlePem !== this.#trust.bundlePem
    ) {
      this.#trust = read.trust;
      deps.add("trust");
    }
    return deps;
  }

  #addInstance(inst: Instance): void {
    this.#instances.set(inst.id, inst);
    const key = serviceKey(inst.service, inst.namespace);
    let ids = this.#byService.get(key);
    if (!ids) this.#byService.set(key, ids = new Set());
    ids.add(inst.id);
    let onNode = this.#byNode.get(inst.node);
    if (!onNode) this.#byNode.set(inst.node, onNode = new Set());
    onNode.add(inst.id);
  }

  #removeInstance(id: string): void {
    const inst = this.#instances.get(id);
    if (!inst) return;
    this.#instances.delete(id);
    const key = serviceKey(inst.service, inst.namespace);
    const ids = this.#byService.get(key);
    ids?.delete(id);
    if (ids?.size === 0) this.#byService.delete(key);
    const onNode = this.#byNode.get(inst.node);
    onNode?.delete(id);
    if (onNode?.size === 0) this.#byNode.delete(inst.node);
  }

  /** Puts `inst` in place of what is held under its id; marks its old and new homes dirty. */
  #replaceInstance(inst: Instance, dirtyEndpoints: Set<string>, dirtyNodes: Set<string>): void {
    const old = this.#instances.get(inst.id);
    if (old) {
      dirtyEndpoints.add(serviceKey(old.service, old.namespace));
      dirtyNodes.add(old.node);
      this.#removeInstance(inst.id);
    }
    this.#addInstance(inst);
    dirtyEndpoints.add(serviceKey(inst.service, inst.namespace));
    dirtyNodes.add(inst.node);
  }

  #rebuildEndpoints(key: string): void {
    const ids = [...this.#byService.get(key) ?? []].sort(compareStrings);
    if (ids.length === 0) {
      this.#endpoints.delete(key);
      return;
    }
    const list = ids.map((id) => this.#endpoint(this.#instances.get(id)!));
    // By id first, as a full read lists them, so that ties keep the same order.
    list.sort(compareEndpoints);
    this.#endpoints.set(key, list);
  }

  #endpoint(i: Instance): MeshEndpoint {
    return {
      service: i.service,
      namespace: i.namespace,
      node: i.node,
      address: i.address,
      port: i.port,
      // `??`: instances stored before inbound ports existed have no such field.
      inboundPort: i.inboundPort ?? null,
      protocol: i.protocol,
      labels: i.labels,
      healthy: i.health === "healthy",
      locality: localityOf(this.#nodes.get(i.node)?.labels),
      identity: this.#identities.get(i.node) ?? "",
    };
  }

  #rebuildNode(name: string): void {
    const node = this.#nodes.get(name);
    if (!node) {
      this.#sidecars.delete(name);
      this.#localities.delete(name);
      return;
    }
    const inbound: InboundEntry[] = [];
    for (const id of [...this.#byNode.get(name) ?? []].sort(compareStrings)) {
      const i = this.#instances.get(id)!;
      const inboundPort = i.inboundPort ?? null;
      if (inboundPort === null) continue;
      inbound.push({
        id: i.id.slice(0, i.id.lastIndexOf("@")),
        service: i.service,
        namespace: i.namespace,
        inboundPort,
        appPort: i.port,
        protocol: i.protocol,
      });
    }
    this.#sidecars.set(name, {
      // Inbound listeners take every address of the host: peers dial an instance's registered
      // address, which need not be the node's first one, and mTLS guards the port either way.
      hostAddress: UNREGISTERED.hostAddress,
      inbound,
      // `??`: nodes stored before upstreams existed have no such field.
      upstreams: (node.upstreams ?? []).map((u): UpstreamEntry => ({
        service: u.service,
        namespace: u.namespace,
        localPort: u.localPort,
        ...(u.port !== undefined ? { port: u.port } : {}),
      })),
    });
    this.#localities.set(name, localityOf(node.labels));
  }
}

function meshService(s: Service): MeshService {
  return { namespace: s.namespace, name: s.name, ports: s.ports, labels: s.labels };
}

function keyOfPolicy(p: AnyPolicy): string {
  return policyKey(p.kind, p.metadata.namespace, p.metadata.name);
}

/** `kind/namespace/name` → its parts (names hold no `/`). */
function splitPolicyKey(key: string): [PolicyKind, string, string] {
  const first = key.indexOf("/");
  const last = key.lastIndexOf("/");
  return [
    key.slice(0, first) as PolicyKind,
    key.slice(first + 1, last),
    key.slice(last + 1),
  ];
}

/**
 * The dependency key under which the generators look `p` up: its kind and
 * the key of `core/policy/match.ts`'s index (`<ns>/<service>`, or `<ns>/`
 * for a namespace-wide AuthorizationPolicy).
 */
export function policyDep(p: AnyPolicy): Dep {
  if (p.kind === "MeshConfig") return "mesh";
  const service = p.kind === "AuthorizationPolicy" ? p.spec.service ?? "" : p.spec.service;
  return `pol:${p.kind}:${p.metadata.namespace}/${service}`;
}
