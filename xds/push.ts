/**
 * The push pipeline: a registry, policy or trust change → debounce (wait
 * for quiet, never longer than a maximum) → one push context for the whole
 * mesh → the snapshots of the proxies whose inputs changed → the stream
 * server sends what changed. Proxies that ask for the same thing share one
 * snapshot per push, and resources are versioned by content, so an
 * endpoint-only change reaches proxies as EDS only; heartbeats that change
 * nothing never get here, because they bump no revision. A push caused only
 * by policy writes keeps the snapshot of every proxy that neither sends to
 * nor serves a service those policies name.
 */
import type { Logger } from "../core/log.ts";
import { isEmptyChange, mergeChanges, type MeshChange, NO_CHANGE } from "../core/mesh_change.ts";
import { parseSpiffeId } from "../core/spiffe_id.ts";
import { jsonDiff } from "../core/json_diff.ts";
import {
  explain,
  indexPolicies,
  type PolicyIndex,
  type ProxyPolicies,
  type ServiceRef,
  trafficRouteFor,
} from "../core/policy/match.ts";
import {
  type AnyPolicy,
  durationMs,
  type Policy,
  policyKey,
  type PolicySet,
  policySet,
} from "../core/policy/model.ts";
import type { ProxyChange, ResourceChange } from "../policy/service.ts";
import type { Store } from "../store/store.ts";
import type { AdsServer, ProxyPeer } from "./ads_server.ts";
import { consistent, generateProxy } from "./generate/generate.ts";
import {
  type InboundEntry,
  type Locality,
  type MeshEndpoint,
  type MeshView,
  type ProxySnapshot,
  RESOURCE_KINDS,
  type SidecarRequest,
  type UpstreamEntry,
} from "./generate/model.ts";
import { buildPushContext, type PushContext } from "./generate/push_context.ts";

/**
 * Why a push happened: a fixed set, so the metric's labels stay bounded.
 * `endpoints`: only instances changed (Istio's incremental EDS case);
 * `registry`: a service's shape or a node's setup changed.
 */
export type PushReason = "endpoints" | "registry" | "policy" | "trust";

/** The reasons of a change, each once. */
export function pushReasons(change: MeshChange): PushReason[] {
  const reasons: PushReason[] = [];
  if (change.services.length > 0 || change.nodes.length > 0) reasons.push("registry");
  else if (change.endpoints.length > 0) reasons.push("endpoints");
  if (change.policies.length > 0 || change.meshConfig) reasons.push("policy");
  if (change.trust) reasons.push("trust");
  return reasons;
}

/** Options of {@link PushPipeline}. */
export interface PushOptions {
  store: Store;
  log: Logger;
  /** The mesh's trust domain and current bundle PEM. */
  trust: () => { trustDomain: string; bundlePem: string };
  /** Wait this long without a change before pushing. Default: 100 ms. */
  debounceMs?: number;
  /** But never longer than this after the first change. Default: 1 s. */
  maxDelayMs?: number;
  /** Called after each push with its reason and duration. */
  pushed?: (reason: PushReason, ms: number) => void;
}

/** What a node's sidecar asks for, from its registration: {@link SidecarRequest} without the caller. */
export type SidecarSetup = Pick<SidecarRequest, "hostAddress" | "inbound" | "upstreams">;

/** Where a node without `region` and `zone` labels runs, as far as routing goes. */
const NO_LOCALITY: Locality = { region: "", zone: "" };

/** A node's locality, from its `region` and `zone` labels. */
function localityOf(labels: Readonly<Record<string, string>> | undefined): Locality {
  return { region: labels?.["region"] ?? "", zone: labels?.["zone"] ?? "" };
}

/** A sidecar on a node the registry does not know (yet): nothing to serve or reach. */
const UNREGISTERED: SidecarSetup = { hostAddress: "0.0.0.0", inbound: [], upstreams: [] };

/** The push pipeline; the stream server asks it for snapshots. */
export class PushPipeline {
  readonly #options: PushOptions;
  #servers: AdsServer[] = [];
  #context: PushContext | null = null;
  /** Each registered node's sidecar setup, from the same store reads as the context. */
  #sidecars = new Map<string, SidecarSetup>();
  /** Each registered node's locality (its `region` and `zone` labels). */
  #localities = new Map<string, Locality>();
  #snapshots = new Map<string, ProxySnapshot>();
  /** The snapshots of the push before, for a proxy whose configuration cannot be generated. */
  #previous = new Map<string, ProxySnapshot>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #firstChange = 0;
  /** What changed since the last push. */
  #pending: MeshChange = NO_CHANGE;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: PushOptions) {
    this.#options = options;
  }

  /** Connects the stream servers and builds the first push context. */
  async start(servers: AdsServer[]): Promise<void> {
    this.#servers = servers;
    await this.#rebuild();
  }

  /** Stops pending pushes. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  /**
   * Records a change; the push follows once changes pause (or the maximum
   * delay is reached).
   */
  changed(change: MeshChange): void {
    if (this.#stopped || isEmptyChange(change)) return;
    const now = Date.now();
    if (this.#timer === null) this.#firstChange = now;
    else clearTimeout(this.#timer);
    this.#pending = mergeChanges(this.#pending, change);
    const { debounceMs, maxDelayMs } = this.#timing();
    const wait = Math.max(0, Math.min(debounceMs, this.#firstChange + maxDelayMs - now));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const change = this.#pending;
      const causedAt = this.#firstChange;
      this.#pending = NO_CHANGE;
      this.#running = this.#running.then(() => this.#push(change, causedAt)).catch((
        error,
      ) =>
        this.#options.log.error("Push failed: proxies keep their last configuration", { error })
      );
    }, wait);
  }

  /** The mesh's MeshConfig as of the last push, or `null`. */
  meshConfig(): Policy<"MeshConfig"> | null {
    return this.#context?.view.policies?.meshConfig ?? null;
  }

  /** Debounce settings: MeshConfig's `push` when set, else the server's flags. */
  #timing(): { debounceMs: number; maxDelayMs: number } {
    const push = this.meshConfig()?.spec.push;
    return {
      debounceMs: push?.debounce !== undefined
        ? durationMs(push.debounce)
        : this.#options.debounceMs ?? 100,
      maxDelayMs: push?.maxDelay !== undefined
        ? durationMs(push.maxDelay)
        : this.#options.maxDelayMs ?? 1_000,
    };
  }

  async #push(change: MeshChange, causedAt: number): Promise<void> {
    const start = performance.now();
    const reasons = pushReasons(change);
    const previous = this.#context;
    const previousSnapshots = this.#snapshots;
    await this.#rebuild();
    if (previous && reasons.length === 1 && reasons[0] === "policy") {
      this.#keepUnaffected(previous, previousSnapshots, change.policies);
    }
    for (const server of this.#servers) await server.push(causedAt);
    const ms = performance.now() - start;
    for (const reason of reasons) this.#options.pushed?.(reason, ms);
    this.#options.log.debug("Pushed", { reasons, ms: Math.round(ms) });
  }

  async #rebuild(): Promise<void> {
    const { view, sidecars, localities } = await this.#read();
    this.#context = buildPushContext(view);
    this.#sidecars = sidecars;
    this.#localities = localities;
    this.#previous = this.#snapshots;
    this.#snapshots = new Map();
  }

  async #read(): Promise<
    { view: MeshView; sidecars: Map<string, SidecarSetup>; localities: Map<string, Locality> }
  > {
    const { store } = this.#options;
    const all = { limit: 1_000_000 };
    const [services, instances, nodes, certificates, policies] = await Promise.all([
      store.list("service", all),
      store.list("instance", all),
      store.list("node", all),
      store.listCertificates({ current: true, liveAt: new Date().toISOString() }),
      store.listPolicies(),
    ]);
    const labels = new Map(nodes.map((n) => [n.name, n.labels]));
    const identities = new Map(certificates.map((c) => [c.node, c.identity]));
    const { trustDomain, bundlePem } = this.#options.trust();
    const endpoints: MeshEndpoint[] = instances.map((i) => ({
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
      locality: localityOf(labels.get(i.node)),
      identity: identities.get(i.node) ?? "",
    }));
    const inbound = new Map<string, InboundEntry[]>();
    for (const i of instances) {
      const inboundPort = i.inboundPort ?? null;
      if (inboundPort === null) continue;
      const entry: InboundEntry = {
        id: i.id.slice(0, i.id.lastIndexOf("@")),
        service: i.service,
        namespace: i.namespace,
        inboundPort,
        appPort: i.port,
        protocol: i.protocol,
      };
      const list = inbound.get(i.node);
      if (list) list.push(entry);
      else inbound.set(i.node, [entry]);
    }
    const sidecars = new Map<string, SidecarSetup>(nodes.map((n) => [n.name, {
      // Inbound listeners take every address of the host: peers dial an instance's registered
      // address, which need not be the node's first one, and mTLS guards the port either way.
      hostAddress: UNREGISTERED.hostAddress,
      inbound: inbound.get(n.name) ?? [],
      // `??`: nodes stored before upstreams existed have no such field.
      upstreams: (n.upstreams ?? []).map((u): UpstreamEntry => ({
        service: u.service,
        namespace: u.namespace,
        localPort: u.localPort,
        ...(u.port !== undefined ? { port: u.port } : {}),
      })),
    }]));
    const view: MeshView = {
      trustDomain,
      trustBundlePem: bundlePem,
      services: services.map((s) => ({
        namespace: s.namespace,
        name: s.name,
        ports: s.ports,
        labels: s.labels,
      })),
      endpoints,
      policies: policySet(policies),
    };
    const localities = new Map(nodes.map((n) => [n.name, localityOf(n.labels)]));
    return { view, sidecars, localities };
  }

  /**
   * A proxy's snapshot from the current push context. Proxyless clients of
   * one namespace get the same configuration, so they share one snapshot. A
   * sidecar gets its node's setup from the registry: inbound listeners on
   * the node's first address for the instances that declare an inbound port,
   * and the node's upstreams; a node not registered yet gets neither until
   * its registration triggers a push.
   */
  snapshotFor(peer: ProxyPeer): ProxySnapshot {
    if (!this.#context) throw new Error("The push pipeline has not started");
    const key = this.#keyOf(peer);
    let snapshot = this.#snapshots.get(key);
    if (!snapshot) {
      try {
        snapshot = this.#generate(this.#context, key, peer);
      } catch (error) {
        // A generator bug (or a stored policy no generator can compile) must not stall every
        // proxy's push: this proxy keeps what it had; without that, it gets the mesh's defaults.
        this.#options.log.error("Cannot generate a proxy's configuration: it keeps its last one", {
          proxy: key,
          error,
        });
        snapshot = this.#previous.get(key) ??
          this.#generate(
            buildPushContext({ ...this.#context.view, policies: policySet([]) }),
            key,
            peer,
          );
      }
      this.#snapshots.set(key, snapshot);
    }
    return snapshot;
  }

  /**
   * The snapshot cache key of a peer: its node for a sidecar; for proxyless
   * clients their namespace and locality, the only inputs they differ by.
   */
  #keyOf(peer: ProxyPeer): string {
    if (peer.kind === "sidecar") return `sidecar|${peer.node}`;
    const namespace = parseSpiffeId(peer.identity)?.namespace ?? "";
    const { region, zone } = this.#localities.get(peer.node) ?? NO_LOCALITY;
    return `proxyless|${namespace}|${region}|${zone}`;
  }

  #generate(context: PushContext, key: string, peer: ProxyPeer): ProxySnapshot {
    const locality = this.#localities.get(peer.node) ?? NO_LOCALITY;
    const snapshot = generateProxy(
      context,
      peer.kind === "proxyless"
        ? { kind: "proxyless", node: peer.node, identity: peer.identity, locality }
        : {
          kind: "sidecar",
          node: peer.node,
          identity: peer.identity,
          locality,
          ...(this.#sidecars.get(peer.node) ?? UNREGISTERED),
        },
    );
    // go-control-plane's Consistent(): every referenced route and endpoint list must exist.
    // A gap is a generator bug; the snapshot is still served (a missing list reads as empty).
    const problems = consistent(snapshot);
    if (problems.length > 0) {
      this.#options.log.error("Inconsistent xDS snapshot", { proxy: key, problems });
    }
    return snapshot;
  }

  /**
   * After a push caused only by policy writes, carries over the snapshots
   * of proxies those writes cannot touch: the registry is unchanged, so
   * their inputs are too.
   */
  #keepUnaffected(
    previous: PushContext,
    snapshots: Map<string, ProxySnapshot>,
    policyKeys: readonly string[],
  ): void {
    const affected = this.#affected(
      previous.view.policies,
      this.#context!.view.policies,
      policyKeys,
    );
    for (const [key, snapshot] of snapshots) {
      if (!affected(key)) this.#snapshots.set(key, snapshot);
    }
  }

  /**
   * Which snapshots (by cache key) a change from `before` to `after` of the
   * policies `keys` can alter: the sidecars that send to or serve a service
   * those policies name (or, through a TrafficRoute, send to it), the
   * proxyless clients when a client-side policy changed, and everyone when
   * MeshConfig did.
   */
  #affected(
    before: PolicySet | undefined,
    after: PolicySet | undefined,
    keys: readonly string[],
  ): (snapshotKey: string) => boolean {
    const lookup = (set: PolicySet | undefined) =>
      new Map(
        allPolicies(set).map((p) => [policyKey(p.kind, p.metadata.namespace, p.metadata.name), p]),
      );
    const old = lookup(before);
    const now = lookup(after);
    // Client-side kinds shape what a proxy sends; server-side kinds what a sidecar receives.
    const sent = new Set<string>();
    const served = new Set<string>();
    const namespaces = new Set<string>();
    let mesh = false;
    for (const key of keys) {
      for (const p of [old.get(key), now.get(key)]) {
        if (!p) continue;
        const ns = p.metadata.namespace;
        if (p.kind === "MeshConfig") mesh = true;
        else if (p.kind === "TrafficRoute" || p.kind === "DestinationPolicy") {
          sent.add(`${ns}/${p.spec.service}`);
        } else if (p.spec.service === undefined) namespaces.add(ns);
        else served.add(`${ns}/${p.spec.service}`);
      }
    }
    const indexes = [indexPolicies(before ?? policySet([])), indexPolicies(after ?? policySet([]))];
    return (snapshotKey) => {
      if (mesh) return true;
      if (snapshotKey.startsWith("proxyless|")) return sent.size > 0;
      const setup = this.#sidecars.get(snapshotKey.slice("sidecar|".length));
      if (!setup) return true;
      for (const u of setup.upstreams) {
        if (sent.has(`${u.namespace}/${u.service}`)) return true;
        for (const index of indexes) {
          for (const d of routeDestinations(index, u)) if (sent.has(d)) return true;
        }
      }
      return setup.inbound.some((e) =>
        served.has(`${e.namespace}/${e.service}`) || namespaces.has(e.namespace)
      );
    };
  }

  /** Every proxy configuration the registry knows of: each node's sidecar, each connected proxyless namespace. */
  #targets(): Map<string, ProxyPeer> {
    const targets = new Map<string, ProxyPeer>();
    for (const node of this.#sidecars.keys()) {
      targets.set(`sidecar|${node}`, { kind: "sidecar", node, identity: "" });
    }
    for (const server of this.#servers) {
      for (const s of server.status()) {
        if (s.kind !== "proxyless") continue;
        targets.set(this.#keyOf(s), {
          kind: "proxyless",
          node: s.node,
          identity: s.identity,
        });
      }
    }
    return targets;
  }

  /**
   * A dry run: every proxy configuration that would differ if the mesh's
   * policies were `policies`, with the resources that would change. Nothing
   * is stored or pushed.
   */
  preview(policies: PolicySet): ProxyChange[] {
    const context = this.#context;
    if (!context) throw new Error("The push pipeline has not started");
    const current = context.view.policies ?? policySet([]);
    const keyOf = (p: AnyPolicy) => policyKey(p.kind, p.metadata.namespace, p.metadata.name);
    const before = new Map(allPolicies(current).map((p) => [keyOf(p), p]));
    const after = new Map(allPolicies(policies).map((p) => [keyOf(p), p]));
    const changedKeys = [...new Set([...before.keys(), ...after.keys()])].filter((k) => {
      const a = before.get(k);
      const b = after.get(k);
      return !a || !b || jsonDiff(a.spec, b.spec).length > 0 ||
        jsonDiff(a.metadata.labels, b.metadata.labels).length > 0;
    });
    const affected = this.#affected(current, policies, changedKeys);
    const proposed = buildPushContext({ ...context.view, policies });
    const connected = new Map<string, string[]>();
    for (const server of this.#servers) {
      for (const s of server.status()) {
        const key = this.#keyOf(s);
        connected.set(key, [...connected.get(key) ?? [], s.id]);
      }
    }
    const out: ProxyChange[] = [];
    for (const [key, peer] of this.#targets()) {
      if (!affected(key)) continue;
      const was = this.#snapshots.get(key) ?? this.#generate(context, key, peer);
      const changes = snapshotChanges(was, this.#generate(proposed, key, peer));
      if (changes.length === 0) continue;
      out.push({
        kind: peer.kind,
        target: peer.kind === "sidecar" ? peer.node : parseSpiffeId(peer.identity)?.namespace ?? "",
        connected: (connected.get(key) ?? []).sort(),
        changes,
      });
    }
    return out.sort((a, b) => a.kind.localeCompare(b.kind) || a.target.localeCompare(b.target));
  }

  /**
   * The policies that apply to a proxy and why: `id` is a connected proxy's
   * stream id or a node name (its sidecar, connected or not).
   */
  explain(id: string): ProxyPolicies | null {
    const context = this.#context;
    if (!context) return null;
    const status = this.#servers.flatMap((s) => s.status()).find((s) => s.id === id);
    const node = status?.node ?? id;
    const kind = status?.kind ?? "sidecar";
    let services: { outbound: ServiceRef[]; inbound: ServiceRef[] };
    if (kind === "proxyless") {
      services = {
        outbound: context.services
          .filter((s) => s.ports.some((p) => p.protocol === "grpc" || p.protocol === "http2"))
          .map((s) => ({ namespace: s.namespace, service: s.name })),
        inbound: [],
      };
    } else {
      const setup = this.#sidecars.get(node);
      if (!setup) return null;
      services = {
        outbound: uniqueRefs(setup.upstreams),
        inbound: uniqueRefs(setup.inbound),
      };
    }
    return {
      id: status?.id ?? node,
      node,
      kind,
      ...services,
      policies: explain(context.policies, services),
    };
  }
}

/** Each service once, in first-seen order (several instances of one service share a node). */
function uniqueRefs(entries: readonly { namespace: string; service: string }[]): ServiceRef[] {
  const seen = new Map<string, ServiceRef>();
  for (const e of entries) {
    const key = `${e.namespace}/${e.service}`;
    if (!seen.has(key)) seen.set(key, { namespace: e.namespace, service: e.service });
  }
  return [...seen.values()];
}

function allPolicies(set: PolicySet | undefined): AnyPolicy[] {
  if (!set) return [];
  return [
    ...set.trafficRoutes,
    ...set.destinationPolicies,
    ...set.authorizationPolicies,
    ...set.rateLimits,
    ...(set.meshConfig ? [set.meshConfig] : []),
  ];
}

/** The services (`namespace/name`) a TrafficRoute of `upstream` splits or mirrors to. */
function routeDestinations(index: PolicyIndex, upstream: UpstreamEntry): string[] {
  const route = trafficRouteFor(index, upstream.namespace, upstream.service);
  if (!route) return [];
  const out: string[] = [];
  for (const rule of route.spec.rules) {
    for (const d of [...rule.split ?? [], ...rule.mirror ? [rule.mirror] : []]) {
      out.push(`${d.namespace ?? upstream.namespace}/${d.service ?? upstream.service}`);
    }
  }
  return out;
}

/** What differs between two snapshots of one proxy, resource by resource. */
function snapshotChanges(before: ProxySnapshot, after: ProxySnapshot): ResourceChange[] {
  const out: ResourceChange[] = [];
  for (const type of RESOURCE_KINDS) {
    const was = new Map(before[type].map((r) => [r.name, r]));
    const now = new Map(after[type].map((r) => [r.name, r]));
    for (const name of [...new Set([...was.keys(), ...now.keys()])].sort()) {
      const a = was.get(name);
      const b = now.get(name);
      if (!a) out.push({ type, name, op: "added" });
      else if (!b) out.push({ type, name, op: "removed" });
      else if (a.version !== b.version) {
        out.push({ type, name, op: "changed", diff: jsonDiff(a.body, b.body) });
      }
    }
  }
  return out;
}
