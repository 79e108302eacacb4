/**
 * Registry reads: filtered, paged lists and single objects, as the REST API
 * serves them.
 */
import { NotFoundError } from "../core/errors.ts";
import { matchesSelector, type Selector } from "../core/labels.ts";
import type { Health, Instance, MeshNode, NodeStatus, Service } from "../core/model.ts";
import type { RegistryWriter } from "./writer.ts";

/** Filters of a list call. */
export interface ListFilter {
  namespace?: string;
  service?: string;
  node?: string;
  health?: Health;
  status?: NodeStatus;
  selector?: Selector;
  after?: string;
  limit: number;
}

/** A page of a list. */
export interface Page<T> {
  items: T[];
  /** Key to continue after, or `null` on the last page. */
  next: string | null;
  revision: number;
}

/** Most rows one list call scans. */
export const MAX_PAGE_SCAN = 100_000;

/** The registry's reads. */
export class RegistryReads {
  readonly #w: RegistryWriter;
  readonly #lastBeat: (node: string) => number | undefined;

  /** `lastBeat`: a node's last heartbeat (ms), newer than the store's until the next flush. */
  constructor(writer: RegistryWriter, lastBeat: (node: string) => number | undefined) {
    this.#w = writer;
    this.#lastBeat = lastBeat;
  }

  listServices(filter: ListFilter): Promise<Page<Service>> {
    const selector = filter.selector;
    return this.#page(
      "service",
      filter,
      selector ? (s) => matchesSelector(selector, s.labels) : undefined,
      (s) => `${s.namespace}/${s.name}`,
      {
        ...(filter.namespace !== undefined ? { namespace: filter.namespace } : {}),
      },
    );
  }

  /** Nodes, filtered and paged. */
  listNodes(filter: ListFilter): Promise<Page<MeshNode>> {
    const { selector, status } = filter;
    const where = selector || status
      ? (n: MeshNode) =>
        (!selector || matchesSelector(selector, n.labels)) && (!status || n.status === status)
      : undefined;
    return this.#page("node", filter, where, (n) => n.name, {});
  }

  /** Instances, filtered and paged. */
  listInstances(filter: ListFilter): Promise<Page<Instance>> {
    const selector = filter.selector;
    const indexed = {
      ...(filter.namespace !== undefined ? { namespace: filter.namespace } : {}),
      ...(filter.service !== undefined ? { service: filter.service } : {}),
      ...(filter.node !== undefined ? { node: filter.node } : {}),
      ...(filter.health !== undefined ? { health: filter.health } : {}),
    };
    return this.#page(
      "instance",
      filter,
      selector ? (i) => matchesSelector(selector, i.labels) : undefined,
      (i) => i.id,
      indexed,
    );
  }

  async #page<K extends "node" | "instance" | "service", T extends Service | MeshNode | Instance>(
    kind: K,
    filter: ListFilter,
    where: ((v: T) => boolean) | undefined,
    key: (v: T) => string,
    indexed: { namespace?: string; service?: string; node?: string; health?: Health },
  ): Promise<Page<T>> {
    const revision = this.#w.feed.revision;
    const items = await this.#w.store.list(kind, {
      ...indexed,
      ...(filter.after !== undefined ? { after: filter.after } : {}),
      limit: Math.min(filter.limit + 1, MAX_PAGE_SCAN),
      ...(where ? { where: where as (v: unknown) => boolean } : {}),
    }) as T[];
    const more = items.length > filter.limit;
    const page = more ? items.slice(0, filter.limit) : items;
    return { items: page, next: more ? key(page.at(-1)!) : null, revision };
  }

  /** One service. */
  async getService(namespace: string, name: string): Promise<Service> {
    const service = await this.#w.store.get("service", `${namespace}/${name}`);
    if (!service) {
      throw new NotFoundError(`Service "${name}" does not exist in namespace "${namespace}"`);
    }
    return service;
  }

  /** One node. */
  async getNode(name: string): Promise<MeshNode> {
    const node = await this.#w.store.get("node", name);
    if (!node) throw new NotFoundError(`Node "${name}" is not registered`);
    const beat = this.#lastBeat(name);
    return beat !== undefined ? { ...node, lastHeartbeat: this.#w.iso(beat) } : node;
  }

  /** One instance. */
  async getInstance(id: string): Promise<Instance> {
    const instance = await this.#w.store.get("instance", id);
    if (!instance) throw new NotFoundError(`Instance "${id}" does not exist`);
    return instance;
  }

  /** Namespaces that hold at least one service, with their service counts. */
  async namespaces(): Promise<{ name: string; services: number }[]> {
    const counts = new Map<string, number>();
    for await (const s of this.#w.all("service")) {
      counts.set(s.namespace, (counts.get(s.namespace) ?? 0) + 1);
    }
    return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([name, services]) => ({
      name,
      services,
    }));
  }
}
