/**
 * The service registry: nodes, their instances and the services they form,
 * with health driven by agent heartbeats. One concept per file: writes and
 * their rules (`writer.ts`), reads (`reads.ts`), declared services
 * (`services.ts`), registrations and removals (`nodes.ts`), liveness from
 * heartbeats (`liveness.ts`); this class wires them and owns the timers.
 */
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import type { MeshChange } from "../core/mesh_change.ts";
import type { Heartbeat, Instance, MeshNode, NodeRegistration, Service } from "../core/model.ts";
import type { Store } from "../store/store.ts";
import type { ChangeFeed } from "./feed.ts";
import { Liveness } from "./liveness.ts";
import { NodeRegistrations } from "./nodes.ts";
import type { Actor } from "./owner.ts";
import { type ListFilter, type Page, RegistryReads } from "./reads.ts";
import { ServiceDeclarations } from "./services.ts";
import { RegistryWriter, type WritePreconditions } from "./writer.ts";

export type { Actor, ListFilter, Page, WritePreconditions };

/** Options of {@link Registry}. */
export interface RegistryOptions {
  clock: Clock;
  log: Logger;
  /** A node silent this long is removed with its instances. Default: 72h. */
  reapAfterMs?: number;
  /** How often liveness is evaluated. Default: 1s. */
  sweepIntervalMs?: number;
  /** How often heartbeat times are written to the store in one batch. Default: 1s. */
  flushIntervalMs?: number;
  /**
   * True while this replica runs the sweep (the leader of replicas sharing
   * a store; `store/leader_elector.ts`). Default: always.
   */
  leading?: () => boolean;
  /** The lease the sweep's writes must still hold at commit (`Batch.fence`). Default: none. */
  fence?: RegistryWriter["sweepFence"];
}

/** Default reap period: Consul's `reconnect_timeout`, so a host down for a long weekend keeps its record. */
export const DEFAULT_REAP_AFTER_MS = 72 * 3_600_000;

/** The registry; see the module comment. */
export class Registry {
  readonly feed: ChangeFeed;
  readonly #w: RegistryWriter;
  readonly #reads: RegistryReads;
  readonly #services: ServiceDeclarations;
  readonly #nodes: NodeRegistrations;
  readonly #liveness: Liveness;
  readonly #sweepIntervalMs: number;
  readonly #flushIntervalMs: number;
  readonly #leading: () => boolean;
  #timers: ReturnType<typeof setInterval>[] = [];

  constructor(store: Store, options: RegistryOptions) {
    this.#w = new RegistryWriter(store, options.clock, options.log);
    this.feed = this.#w.feed;
    this.#liveness = new Liveness(this.#w, options.reapAfterMs ?? DEFAULT_REAP_AFTER_MS);
    this.#reads = new RegistryReads(this.#w, (node) => this.#liveness.lastBeat(node));
    this.#services = new ServiceDeclarations(this.#w);
    this.#nodes = new NodeRegistrations(this.#w, this.#liveness);
    this.#sweepIntervalMs = options.sweepIntervalMs ?? 1_000;
    this.#flushIntervalMs = options.flushIntervalMs ?? 1_000;
    this.#leading = options.leading ?? (() => true);
    if (options.fence) this.#w.sweepFence = options.fence;
  }

  /**
   * Loads liveness state and starts the sweep and flush timers. Every node
   * starts with a fresh heartbeat clock: a server outage is not the agents'
   * fault, so they get a full TTL to reach the restarted server.
   */
  async start(): Promise<void> {
    this.feed.publish(await this.#w.store.revision());
    await this.#liveness.load();
    this.#timers = [
      setInterval(() => {
        if (this.#leading()) this.#guard("sweep", () => this.sweep());
      }, this.#sweepIntervalMs),
      setInterval(() => this.#guard("flush", () => this.flush()), this.#flushIntervalMs),
    ];
  }

  /** Stops the timers, writes pending heartbeat times and ends every watch. */
  async stop(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    await this.#w.stop();
    await this.flush();
    this.feed.close();
  }

  #guard(what: string, fn: () => Promise<unknown>): void {
    fn().catch((error) => this.#w.log.error(`Registry ${what} failed`, { error: String(error) }));
  }

  /**
   * Calls `listener` with the keys of every committed change, after the
   * feed has its revision. Returns the function that stops it.
   */
  subscribe(listener: (change: MeshChange) => void): () => void {
    return this.#w.subscribe(listener);
  }

  /**
   * Applies registry writes another replica committed to the shared store
   * (read from its revision log): re-reads the liveness of the nodes they
   * touched, publishes `revision` on the feed (blocking queries and event
   * streams wake) and tells subscribers the keys, as a local commit does.
   */
  async applyRemote(revision: number, change: MeshChange): Promise<void> {
    await Promise.all(
      change.nodes.map((name) =>
        this.#w.serial(`node:${name}`, () => this.#liveness.refresh(name))
      ),
    );
    this.#w.publishRemote(revision, change);
  }

  /**
   * Rebuilds what this replica derived from the store after it lost track
   * of the other replicas' writes (their log entries were pruned before it
   * read them): every node's liveness, and the revision. Subscribers get
   * `change`, which names every key (the caller builds it).
   */
  async reloadRemote(change: MeshChange): Promise<void> {
    const names = new Set(this.#liveness.tracked());
    for await (const node of this.#w.all("node")) names.add(node.name);
    for (const name of names) {
      await this.#w.serial(`node:${name}`, () => this.#liveness.refresh(name));
    }
    this.#w.publishRemote(await this.#w.store.revision(), change);
  }

  /** Services, filtered and paged. */
  listServices(filter: ListFilter): Promise<Page<Service>> {
    return this.#reads.listServices(filter);
  }

  /** Nodes, filtered and paged. */
  listNodes(filter: ListFilter): Promise<Page<MeshNode>> {
    return this.#reads.listNodes(filter);
  }

  /** Instances, filtered and paged. */
  listInstances(filter: ListFilter): Promise<Page<Instance>> {
    return this.#reads.listInstances(filter);
  }

  /** One service. */
  getService(namespace: string, name: string): Promise<Service> {
    return this.#reads.getService(namespace, name);
  }

  /** One node. */
  getNode(name: string): Promise<MeshNode> {
    return this.#reads.getNode(name);
  }

  /** One instance. */
  getInstance(id: string): Promise<Instance> {
    return this.#reads.getInstance(id);
  }

  /** Namespaces that hold at least one service, with their service counts. */
  namespaces(): Promise<{ name: string; services: number }[]> {
    return this.#reads.namespaces();
  }

  /** Names of the nodes heartbeating within their TTL now. */
  aliveNodes(): string[] {
    return this.#liveness.aliveNodes();
  }

  /** Number of nodes the heartbeat path tracks. */
  get liveNodes(): number {
    return this.#liveness.liveNodes;
  }

  /**
   * Creates or replaces a service an operator declares. Ports already used by
   * registered instances stay (with their protocol); declaring one of them
   * with another protocol is a conflict, since the instances speak theirs.
   */
  putService(
    ...args: Parameters<ServiceDeclarations["putService"]>
  ): Promise<{ service: Service; created: boolean }> {
    return this.#services.putService(...args);
  }

  /** Deletes a service that has no instances left. */
  deleteService(namespace: string, name: string, pre: WritePreconditions): Promise<void> {
    return this.#services.deleteService(namespace, name, pre);
  }

  /**
   * Registers a node with its whole set of instances (idempotent: the same
   * registration twice changes nothing and bumps no revision). Instances not
   * in the set are removed. An operator's drain survives re-registration.
   * The sidecar's side of the registration (each instance's `inboundPort`,
   * the node's `upstreams`) is content like any other field: changing it
   * bumps the revision, and so reaches the node's sidecar with the next push.
   */
  register(
    name: string,
    reg: NodeRegistration,
    actor: Actor,
  ): Promise<{ node: MeshNode; instances: Instance[] }> {
    return this.#nodes.register(name, reg, actor);
  }

  /**
   * Records a heartbeat. Throws `NotFoundError` for an unknown node and
   * `ConflictError` for an unknown instance: both tell the agent to
   * re-register (e.g. after the server lost its data).
   */
  heartbeat(
    name: string,
    beat: Heartbeat,
    actor: Actor,
  ): Promise<{ ttlMs: number; changed: boolean }> {
    return this.#liveness.heartbeat(name, beat, actor);
  }

  /**
   * Writes pending heartbeat times to the store, in chunks with a yield to
   * the event loop between them: one transaction for 5,000 nodes held the
   * loop for tens of milliseconds, which showed as the heartbeat p99.
   */
  flush(): Promise<void> {
    return this.#liveness.flush();
  }

  /**
   * Applies liveness: nodes silent past their TTL turn stale (their
   * instances unhealthy), nodes silent past the reap period are removed.
   * With several replicas only the leader sweeps (its timer checks), and it
   * judges each node by the newest beat any replica stored, so an agent
   * moving between replicas never turns stale.
   */
  async sweep(): Promise<void> {
    const { reap, stale } = this.#liveness.due();
    for (const name of reap) {
      await this.#w.serial(`node:${name}`, async () => {
        if (await this.#liveness.stillReapable(name)) {
          await this.#nodes.remove(name, "reaped", {}, this.#w.sweepFence());
        }
      });
    }
    for (const name of stale) {
      await this.#w.serial(`node:${name}`, () => this.#liveness.markStale(name));
    }
  }

  /** Removes a node and its instances (agent leaving, or an operator decommissioning it). */
  deregister(name: string, actor: Actor, pre: WritePreconditions = {}): Promise<void> {
    return this.#nodes.deregister(name, actor, pre);
  }

  /** Drains or undrains a node: its instances stay registered but get no traffic. */
  drainNode(name: string, draining: boolean, pre: WritePreconditions): Promise<MeshNode> {
    return this.#nodes.drainNode(name, draining, pre);
  }

  /** Drains or undrains one instance. */
  drainInstance(id: string, draining: boolean, pre: WritePreconditions): Promise<Instance> {
    return this.#nodes.drainInstance(id, draining, pre);
  }
}
