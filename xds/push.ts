/**
 * The push pipeline: a registry or trust change → debounce (wait for quiet,
 * never longer than a maximum) → one push context for the whole mesh →
 * every proxy's snapshot from it → the stream server sends what changed.
 * Proxies that ask for the same thing share one snapshot per push, and
 * resources are versioned by content, so an endpoint-only change reaches
 * proxies as EDS only; heartbeats that change nothing never get here,
 * because they bump no revision.
 */
import type { Logger } from "../core/log.ts";
import { parseSpiffeId } from "../core/spiffe_id.ts";
import type { Store } from "../store/store.ts";
import type { AdsServer, ProxyPeer } from "./ads_server.ts";
import { consistent, generateProxy } from "./generate/generate.ts";
import type {
  InboundEntry,
  MeshEndpoint,
  MeshView,
  ProxySnapshot,
  SidecarRequest,
  UpstreamEntry,
} from "./generate/model.ts";
import { buildPushContext, type PushContext } from "./generate/push_context.ts";

/** Why a push happened: a fixed set, so the metric's labels stay bounded. */
export type PushReason = "registry" | "trust";

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

/** A sidecar on a node the registry does not know (yet): nothing to serve or reach. */
const UNREGISTERED: SidecarSetup = { hostAddress: "0.0.0.0", inbound: [], upstreams: [] };

/** The push pipeline; the stream server asks it for snapshots. */
export class PushPipeline {
  readonly #options: PushOptions;
  #servers: AdsServer[] = [];
  #context: PushContext | null = null;
  /** Each registered node's sidecar setup, from the same store reads as the context. */
  #sidecars = new Map<string, SidecarSetup>();
  #snapshots = new Map<string, ProxySnapshot>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #firstChange = 0;
  #reasons = new Set<PushReason>();
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

  /** Records a change; the push follows once changes pause (or the maximum delay is reached). */
  changed(reason: PushReason): void {
    if (this.#stopped) return;
    const now = Date.now();
    if (this.#timer === null) this.#firstChange = now;
    else clearTimeout(this.#timer);
    this.#reasons.add(reason);
    const debounce = this.#options.debounceMs ?? 100;
    const maxDelay = this.#options.maxDelayMs ?? 1_000;
    const wait = Math.max(0, Math.min(debounce, this.#firstChange + maxDelay - now));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const reasons = [...this.#reasons];
      const causedAt = this.#firstChange;
      this.#reasons.clear();
      this.#running = this.#running.then(() => this.#push(reasons, causedAt)).catch((error) =>
        this.#options.log.error("Push failed: proxies keep their last configuration", { error })
      );
    }, wait);
  }

  async #push(reasons: PushReason[], causedAt: number): Promise<void> {
    const start = performance.now();
    await this.#rebuild();
    for (const server of this.#servers) await server.push(causedAt);
    const ms = performance.now() - start;
    for (const reason of reasons) this.#options.pushed?.(reason, ms);
    this.#options.log.debug("Pushed", { reasons, ms: Math.round(ms) });
  }

  async #rebuild(): Promise<void> {
    const { view, sidecars } = await this.#read();
    this.#context = buildPushContext(view);
    this.#sidecars = sidecars;
    this.#snapshots = new Map();
  }

  async #read(): Promise<{ view: MeshView; sidecars: Map<string, SidecarSetup> }> {
    const { store } = this.#options;
    const all = { limit: 1_000_000 };
    const [services, instances, nodes, certificates] = await Promise.all([
      store.list("service", all),
      store.list("instance", all),
      store.list("node", all),
      store.listCertificates({ current: true, liveAt: new Date().toISOString() }),
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
      locality: {
        region: labels.get(i.node)?.["region"] ?? "",
        zone: labels.get(i.node)?.["zone"] ?? "",
      },
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
    };
    return { view, sidecars };
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
    const namespace = parseSpiffeId(peer.identity)?.namespace ?? "";
    const key = peer.kind === "proxyless" ? `proxyless|${namespace}` : `sidecar|${peer.node}`;
    let snapshot = this.#snapshots.get(key);
    if (!snapshot) {
      snapshot = generateProxy(
        this.#context,
        peer.kind === "proxyless"
          ? { kind: "proxyless", node: peer.node, identity: peer.identity }
          : {
            kind: "sidecar",
            node: peer.node,
            identity: peer.identity,
            ...(this.#sidecars.get(peer.node) ?? UNREGISTERED),
          },
      );
      // go-control-plane's Consistent(): every referenced route and endpoint list must exist.
      // A gap is a generator bug; the snapshot is still served (a missing list reads as empty).
      const problems = consistent(snapshot);
      if (problems.length > 0) {
        this.#options.log.error("Inconsistent xDS snapshot", { proxy: key, problems });
      }
      this.#snapshots.set(key, snapshot);
    }
    return snapshot;
  }
}
