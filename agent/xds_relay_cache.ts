/**
 * What the agent's xDS relay last received from the server, by client node,
 * variant and type, so that it can configure its clients while the server
 * is away — and after an agent restart, from disk.
 *
 * The key is the client's `Node` message as it sent it (hashed): the server
 * builds configuration per node (an Envoy sidecar and a proxyless client get
 * different resources), and a client that restarts sends the same node
 * again. State of the world and delta are kept apart, as the server answers
 * them apart.
 *
 * - State of the world: per type, the resources of the server's last
 *   responses by name, and the version of the latest. The server answers a
 *   subscription with every resource it names (or, for a wildcard, every
 *   resource of the type), so a response replaces what the cache held for
 *   those names: a name the server left out no longer exists.
 * - Delta: per type, each resource with its own version; `removed_resources`
 *   delete.
 *
 * The file (`DATA_DIR/xds/cache.json`, mode 0600) holds the same, resources
 * in base64, rewritten at most every {@link XdsCacheOptions.flushDelayMs}
 * after a change and atomically (a reader never sees half a file). It keeps
 * at most {@link MAX_NODES} nodes, the most recently used.
 */
import { createHash } from "node:crypto";
import type { Logger } from "../core/log.ts";
import { writePrivateFile } from "./host.ts";

/** Nodes kept; past that, the least recently used goes. */
export const MAX_NODES = 32;
/** The format of the cache file; another one is ignored (and rewritten). */
const FORMAT = 1;

/** The cache key of a client: a hash of its encoded `Node` (`""` when it sent none). */
export function nodeKey(node: Uint8Array | null): string {
  if (node === null) return "";
  return createHash("sha256").update(node).digest("hex").slice(0, 32);
}

/** One state-of-the-world type as cached. */
export interface SotwEntry {
  /** The `version_info` of the latest response. */
  version: string;
  /** Resource name → encoded Any. */
  resources: Map<string, Uint8Array>;
}

/** One delta resource as cached: its version and the encoded `Resource`. */
export interface DeltaEntry {
  version: string;
  bytes: Uint8Array;
}

interface NodeEntry {
  sotw: Map<string, SotwEntry>;
  delta: Map<string, Map<string, DeltaEntry>>;
}

/** Options of {@link XdsCache}. */
export interface XdsCacheOptions {
  /** The cache file; absent: memory only. */
  path?: string;
  log: Logger;
  /** Delay between a change and the file's rewrite, in milliseconds. Default: 200. */
  flushDelayMs?: number;
}

interface FileShape {
  format: number;
  nodes: {
    key: string;
    sotw: { type: string; version: string; resources: Record<string, string> }[];
    delta: { type: string; resources: Record<string, { version: string; bytes: string }> }[];
  }[];
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const unb64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));

/** See the module comment. */
export class XdsCache {
  readonly #options: XdsCacheOptions;
  /** In least-recently-used-first order (a Map keeps insertion order). */
  readonly #nodes = new Map<string, NodeEntry>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> = Promise.resolve();
  #dirty = false;

  constructor(options: XdsCacheOptions) {
    this.#options = options;
  }

  /** Nodes held now. */
  get size(): number {
    return this.#nodes.size;
  }

  /**
   * Reads the cache file, if any. A missing file is an empty cache; an
   * unreadable one is logged and ignored (the server will fill the cache).
   */
  async load(): Promise<void> {
    const { path, log } = this.#options;
    if (path === undefined) return;
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        log.warn("Cannot read the xDS cache; starting empty", { path, error });
      }
      return;
    }
    try {
      const file = JSON.parse(text) as FileShape;
      if (file.format !== FORMAT) throw new Error(`unknown format ${JSON.stringify(file.format)}`);
      for (const n of file.nodes) {
        const entry: NodeEntry = { sotw: new Map(), delta: new Map() };
        for (const t of n.sotw) {
          const resources = new Map(Object.entries(t.resources).map(([k, v]) => [k, unb64(v)]));
          entry.sotw.set(t.type, { version: t.version, resources });
        }
        for (const t of n.delta) {
          entry.delta.set(
            t.type,
            new Map(
              Object.entries(t.resources).map((
                [k, v],
              ) => [k, { version: v.version, bytes: unb64(v.bytes) }]),
            ),
          );
        }
        this.#nodes.set(n.key, entry);
      }
      log.info("xDS cache loaded", { path, nodes: this.#nodes.size });
    } catch (error) {
      this.#nodes.clear();
      log.warn("Ignoring an unreadable xDS cache", {
        path,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** The cached state-of-the-world type of a node, if any. */
  sotw(node: string, typeUrl: string): SotwEntry | undefined {
    return this.#nodes.get(node)?.sotw.get(typeUrl);
  }

  /**
   * Records a state-of-the-world response: for the names the subscription
   * had (`"*"`: every name), what the response holds replaces the cache.
   */
  putSotw(
    node: string,
    typeUrl: string,
    names: ReadonlySet<string> | "*",
    version: string,
    resources: readonly { name: string; any: Uint8Array }[],
  ): void {
    const entry = this.#touch(node);
    let type = entry.sotw.get(typeUrl);
    if (type === undefined || names === "*") {
      type = { version, resources: new Map() };
      entry.sotw.set(typeUrl, type);
    }
    type.version = version;
    if (names !== "*") { for (const name of names) type.resources.delete(name); }
    for (const r of resources) type.resources.set(r.name, r.any);
    this.#changed();
  }

  /** The cached delta resources of a node's type (empty when none). */
  delta(node: string, typeUrl: string): ReadonlyMap<string, DeltaEntry> {
    return this.#nodes.get(node)?.delta.get(typeUrl) ?? new Map();
  }

  /** Records a delta response: its resources replace, its removals delete. */
  applyDelta(
    node: string,
    typeUrl: string,
    resources: readonly { name: string; version: string; bytes: Uint8Array }[],
    removed: readonly string[],
  ): void {
    const entry = this.#touch(node);
    let type = entry.delta.get(typeUrl);
    if (type === undefined) {
      type = new Map();
      entry.delta.set(typeUrl, type);
    }
    for (const r of resources) type.set(r.name, { version: r.version, bytes: r.bytes });
    for (const name of removed) type.delete(name);
    this.#changed();
  }

  /** Writes the file now if it is behind, and stops the timer. */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#dirty) this.#write();
    await this.#writing;
  }

  /** Moves `node` to the most recently used end, creating it; drops the oldest past the cap. */
  #touch(node: string): NodeEntry {
    let entry = this.#nodes.get(node);
    if (entry !== undefined) this.#nodes.delete(node);
    entry ??= { sotw: new Map(), delta: new Map() };
    this.#nodes.set(node, entry);
    while (this.#nodes.size > MAX_NODES) this.#nodes.delete(this.#nodes.keys().next().value!);
    return entry;
  }

  #changed(): void {
    this.#dirty = true;
    if (this.#options.path === undefined || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#write();
    }, this.#options.flushDelayMs ?? 200);
  }

  #write(): void {
    const { path, log } = this.#options;
    if (path === undefined) return;
    this.#dirty = false;
    const file: FileShape = {
      format: FORMAT,
      nodes: [...this.#nodes].map(([key, entry]) => ({
        key,
        sotw: [...entry.sotw].map(([type, t]) => ({
          type,
          version: t.version,
          resources: Object.fromEntries([...t.resources].map(([k, v]) => [k, b64(v)])),
        })),
        delta: [...entry.delta].map(([type, t]) => ({
          type,
          resources: Object.fromEntries(
            [...t].map(([k, v]) => [k, { version: v.version, bytes: b64(v.bytes) }]),
          ),
        })),
      })),
    };
    const text = JSON.stringify(file);
    this.#writing = this.#writing.then(async () => {
      try {
        await writePrivateFile(path, text);
      } catch (error) {
        // The relay keeps serving from memory; only a restart during an outage would miss it.
        log.error("Cannot write the xDS cache", { path, error });
      }
    });
  }
}
