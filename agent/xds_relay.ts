/**
 * The agent's local xDS endpoint. Proxyless gRPC applications
 * (`@grpc/grpc-js-xds`) can only reach an xDS server in plaintext, and the
 * server's gRPC port demands mTLS with a mesh certificate; so, like Istio's
 * agent, ours listens on loopback without TLS and serves each application
 * stream over its own mTLS identity. Envoy sidecars on the host use the same
 * endpoint (see `envoy.ts`). State of the world and delta are both served.
 *
 * It is a cache, not a pipe (issue 12). Each client stream is a session
 * (`xds_relay_sotw.ts`, `xds_relay_delta.ts`) with an upstream stream of its
 * own to the server; the server sees the agent's certificate, so every
 * stream counts as this agent's node and identity. When the server cannot be
 * reached, the client's stream stays open and is answered from what the
 * server last sent for the client's node (`xds_relay_cache.ts`, also on disk
 * so it outlives an agent restart), while the upstream stream is retried
 * with a short, jittered backoff (at most {@link UPSTREAM_BACKOFF}'s cap
 * apart); once the server is back the client gets the current configuration
 * on the stream it never left. The client is never failed because the server
 * is away: its stream ends only when it ends it, when the agent stops, or
 * when it sends something that is not xDS.
 *
 * The upstream streams run over the runtime's `fetch` (`grpc_fetch.ts`), not
 * grpc-js, whose HTTP/2 layer aborted the agent when the server went away
 * under open streams. A small probe (gRPC health, every
 * {@link PROBE_INTERVAL_MS}) finds a server that vanished without closing
 * its connections, and opens fresh ones.
 *
 * The agent answers the sidecar's workload certificate (SDS `default`)
 * itself, so the key never leaves the host (`sds.ts`). After a certificate
 * renewal or a trust bundle change ({@link XdsRelay.update}) new upstream
 * streams use the new material, and every Envoy subscribed to `default` gets
 * the new certificate on its running stream.
 */
import * as grpc from "@grpc/grpc-js";
import { formatHostPort, type HostPort, isLoopback } from "../core/address.ts";
import { HEALTH_CHECK_PATH } from "../core/grpc_health.ts";
import type { Logger } from "../core/log.ts";
import { workloadCertificate } from "../core/workload_secret.ts";
import { backoffDelay } from "./backoff.ts";
import { type CallStatus, type GrpcStream, grpcUnary, openGrpcStream } from "./grpc_fetch.ts";
import { LocalResources } from "./sds.ts";
import { ClientPool, type Lease, type TlsMaterial } from "./tls_clients.ts";
import { XdsCache } from "./xds_relay_cache.ts";
import { DeltaSession } from "./xds_relay_delta.ts";
import type { RelaySession, SessionOptions } from "./xds_relay_session.ts";
import { SotwSession } from "./xds_relay_sotw.ts";

/** The full method name of state-of-the-world ADS. */
export const ADS_METHOD =
  "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
/** The full method name of incremental (delta) ADS. */
export const DELTA_ADS_METHOD =
  "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/** The default loopback address of the local xDS endpoint. */
export const DEFAULT_LOCAL_XDS_ADDR = "127.0.0.1:15010";
/** The port of the server's gRPC (xDS) address when only its host is known. */
export const DEFAULT_XDS_SERVER_PORT = 15012;
/**
 * Retries of an upstream stream: full jitter up to 100 ms doubling to 1 s.
 * Short, because a client's next configuration waits on it; cheap, because
 * each retry is one connection attempt per client stream.
 */
export const UPSTREAM_BACKOFF = { baseMs: 100, capMs: 1_000 } as const;
/** How often the server's gRPC port is probed while streams are up. */
export const PROBE_INTERVAL_MS = 15_000;

const identity = (bytes: Buffer): Buffer => bytes;

function rawMethod(path: string, originalName: string): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName,
  };
}

/** Both ADS variants with raw bytes: the sessions read what they need. */
const relayServiceDefinition: grpc.ServiceDefinition = {
  streamAggregatedResources: rawMethod(ADS_METHOD, "StreamAggregatedResources"),
  deltaAggregatedResources: rawMethod(DELTA_ADS_METHOD, "DeltaAggregatedResources"),
};

/** Options of {@link startXdsRelay}. */
export interface XdsRelayOptions {
  /** Where to listen; must be a loopback address. Port 0 picks a free port. */
  listen: HostPort;
  /** The server's gRPC address (`host:port`), reached over mTLS. */
  upstream: string;
  /** The agent's trust bundle, certificate chain and key. */
  material: TlsMaterial;
  log: Logger;
  /** The cache file (`DATA_DIR/xds/cache.json`); absent: the cache lives in memory only. */
  cachePath?: string;
  /** Counts what the relay does, for metrics. */
  events?: RelayEvents;
}

/** Hooks for metrics. */
export interface RelayEvents {
  /** A client stream opened (+1) or ended (-1). */
  stream?: (variant: "sotw" | "delta", delta: 1 | -1) => void;
  /** A response to a client came from the cache while the server was away. */
  servedFromCache?: (typeUrl: string) => void;
  /** An upstream stream failed. */
  upstreamFailure?: () => void;
}

/** Counts of what the relay is doing, for logs and tests. */
export interface RelayStats {
  /** Client streams open now. */
  streams: number;
  /** Client streams whose upstream stream is answering now. */
  upstreamLive: number;
  /** Client streams accepted since the start. */
  total: number;
}

/** A running relay; see the module comment. */
export interface XdsRelay {
  /** The address actually bound (port 0 resolved). */
  readonly address: HostPort;
  /**
   * Makes new upstream streams use `material`; running ones keep theirs.
   * A new certificate goes to every Envoy subscribed to `default` at once.
   */
  update(material: TlsMaterial): void;
  stats(): RelayStats;
  /** Stops listening, ends every stream both sides, writes the cache file. */
  close(): Promise<void>;
}

/**
 * Reads `--local-xds-addr`: `HOST:PORT` with a loopback host, since the
 * endpoint is plaintext and hands out this host's mesh identity. Throws a
 * message fit for the user otherwise.
 */
export function parseLocalXdsAddr(text: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) {
    throw new Error(`Invalid address "${text}": expected HOST:PORT or [IPV6]:PORT`);
  }
  const host = m[1] ?? m[2]!;
  if (!isLoopback(host)) {
    throw new Error(
      `Refusing local xDS address "${text}": it must be a loopback address (127.0.0.1, ::1 or localhost), because the endpoint is plaintext and relays with this host's mesh identity`,
    );
  }
  return { host, port };
}

/**
 * The default `--xds-server`: the host of the server's REST URL with the
 * server's default gRPC port, 15012.
 */
export function defaultXdsServer(serverUrl: string): string {
  const host = new URL(serverUrl).hostname;
  return `${host}:${DEFAULT_XDS_SERVER_PORT}`;
}

function certificateOf(material: TlsMaterial) {
  if (material.certPem === undefined || material.keyPem === undefined) {
    throw new Error("The xDS relay needs the agent's certificate and key");
  }
  return workloadCertificate(material.certPem, material.keyPem);
}

function describeStatus(status: CallStatus): Record<string, unknown> {
  const code = status.code === null ? "none" : grpc.status[status.code] ?? String(status.code);
  return { code, details: status.details };
}

/**
 * The upstream stream of one client session: opened on the session's first
 * message, reopened with backoff whenever it ends, until {@link close}.
 */
class UpstreamLink {
  #stream: GrpcStream | null = null;
  #lease: Lease | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  #closed = false;
  /** Whether the current stream has answered. */
  live = false;
  /** Whether a failure was logged and the recovery is still to be logged. */
  #failing = false;

  constructor(
    private readonly session: RelaySession,
    private readonly options: {
      id: number;
      url: URL;
      pool: () => ClientPool;
      log: Logger;
      upstream: string;
      events: RelayEvents | undefined;
    },
  ) {}

  /** Opens the stream unless it is open or waiting to reopen. */
  ensure(): void {
    if (this.#closed || this.#stream !== null || this.#timer !== undefined) return;
    this.#open();
  }

  /** Ends the current stream and opens a new one at once (a fresh connection was made). */
  restart(): void {
    if (this.#closed || this.#stream === null) return;
    this.#drop();
    this.#open();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#drop();
  }

  #drop(): void {
    this.#stream?.cancel();
    this.#stream = null;
    this.live = false;
    this.#lease?.release();
    this.#lease = null;
    this.session.upstreamClosed();
  }

  #open(): void {
    const { log } = this.options;
    let lease: Lease;
    try {
      lease = this.options.pool().acquire();
    } catch {
      return; // The relay is closing.
    }
    this.#lease = lease;
    const stream = openGrpcStream({
      client: lease.client,
      url: this.options.url,
      onMessage: (message) => {
        if (this.#stream !== stream) return;
        if (!this.live && this.#failing) {
          log.info("xDS stream to the server restored", { stream: this.options.id });
          this.#failing = false;
        }
        this.live = true;
        this.#attempt = 0;
        try {
          this.session.fromUpstream(message);
        } catch (error) {
          log.warn("Ignoring an unreadable message from the server", {
            stream: this.options.id,
            error: error instanceof Error ? error.message : String(error),
          });
        }
      },
      onClose: (status) => {
        if (this.#stream !== stream) return;
        this.#stream = null;
        this.live = false;
        lease.release();
        this.#lease = null;
        this.session.upstreamClosed();
        this.options.events?.upstreamFailure?.();
        const delay = backoffDelay(this.#attempt++, UPSTREAM_BACKOFF);
        const fields = {
          stream: this.options.id,
          upstream: this.options.upstream,
          ...describeStatus(status),
          retryIn: `${delay}ms`,
        };
        if (this.#failing) {
          log.debug("xDS stream to the server failed again", fields);
        } else {
          // One line per outage: retries are frequent, and the client is served meanwhile.
          log.warn("xDS stream to the server failed; serving from the cache", fields);
          this.#failing = true;
        }
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          if (!this.#closed) this.#open();
        }, delay);
      },
    });
    this.#stream = stream;
    this.session.upstreamOpened((bytes) => stream.send(bytes));
  }
}

/** Starts the relay; rejects when the address cannot be bound or is not loopback. */
export async function startXdsRelay(options: XdsRelayOptions): Promise<XdsRelay> {
  const { log } = options;
  if (!isLoopback(options.listen.host)) {
    throw new Error(
      `Refusing local xDS address "${
        formatHostPort(options.listen)
      }": it must be a loopback address`,
    );
  }
  const base = `https://${options.upstream}`;
  try {
    new URL(base);
  } catch {
    throw new Error(`Invalid xDS server address "${options.upstream}": expected HOST:PORT`);
  }
  let material = options.material;
  let certificate = certificateOf(material);
  const local = new LocalResources(() => certificate);
  const cache = new XdsCache({
    log,
    ...(options.cachePath === undefined ? {} : { path: options.cachePath }),
  });
  await cache.load();
  let pool = new ClientPool(material);
  const links = new Map<RelaySession, UpstreamLink>();
  const calls = new Set<() => void>();
  let total = 0;
  let closed = false;

  const serve = (variant: "sotw" | "delta") => (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    if (closed) {
      call.emit("error", { code: grpc.status.UNAVAILABLE, details: "The agent is stopping" });
      return;
    }
    const id = ++total;
    let finished = false;
    const sessionOptions: SessionOptions = {
      id,
      cache,
      local,
      log,
      wantUpstream: () => link.ensure(),
      down: (bytes) => {
        if (!finished) call.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      },
      ...(options.events?.servedFromCache
        ? { servedFromCache: options.events.servedFromCache }
        : {}),
    };
    const session = variant === "sotw"
      ? new SotwSession(sessionOptions)
      : new DeltaSession(sessionOptions);
    const link = new UpstreamLink(session, {
      id,
      url: new URL(variant === "sotw" ? ADS_METHOD : DELTA_ADS_METHOD, base),
      pool: () => pool,
      log,
      upstream: options.upstream,
      events: options.events,
    });
    links.set(session, link);
    options.events?.stream?.(variant, 1);
    log.info("Local xDS client stream opened", { stream: id, variant });
    const finish = (how: string) => {
      if (finished) return false;
      finished = true;
      link.close();
      links.delete(session);
      calls.delete(stop);
      options.events?.stream?.(variant, -1);
      log.info("Local xDS client stream ended", { stream: id, how });
      return true;
    };
    // Used by close(): the client is told the agent went away.
    const stop = () => {
      if (finish("the agent is stopping")) {
        call.emit("error", {
          code: grpc.status.UNAVAILABLE,
          details: "The agent is shutting down",
        });
      }
    };
    calls.add(stop);
    call.on("data", (bytes: Buffer) => {
      if (finished) return;
      try {
        session.fromClient(bytes);
      } catch (error) {
        const details = `Invalid xDS request: ${error instanceof Error ? error.message : error}`;
        log.warn("Ending a local xDS stream: the client sent something that is not xDS", {
          stream: id,
          details,
        });
        if (finish("not xDS")) call.emit("error", { code: grpc.status.INVALID_ARGUMENT, details });
      }
    });
    call.on("end", () => {
      if (finish("the client ended it")) call.end();
    });
    call.on("cancelled", () => finish("the client cancelled it"));
    call.on("error", () => finish("transport error"));
  };

  const server = new grpc.Server({ "grpc.max_receive_message_length": 4 * 1024 * 1024 });
  server.addService(relayServiceDefinition, {
    streamAggregatedResources: serve("sotw"),
    deltaAggregatedResources: serve("delta"),
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      formatHostPort(options.listen),
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => error ? reject(error) : resolve(bound),
    );
  }).catch((error) => {
    pool.close();
    throw new Error(
      `Cannot listen on local xDS address ${formatHostPort(options.listen)}: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  });
  const address = { host: options.listen.host, port };
  log.info("Local xDS endpoint listening", {
    address: formatHostPort(address),
    upstream: options.upstream,
  });

  // A server that vanished without closing its connections leaves streams that never end:
  // a health call on the same connections finds out, and fresh ones replace them.
  let probing = false;
  const probe = setInterval(async () => {
    if (probing || closed || ![...links.values()].some((l) => l.live)) return;
    probing = true;
    const lease = pool.acquire();
    try {
      await grpcUnary(lease.client, new URL(HEALTH_CHECK_PATH, base), new Uint8Array(), 5_000);
    } catch (error) {
      if (closed) return;
      log.warn("The server's gRPC port stopped answering; reconnecting", {
        upstream: options.upstream,
        error: error instanceof Error ? error.message : String(error),
      });
      const old = pool;
      pool = new ClientPool(material);
      old.close();
      for (const link of links.values()) link.restart();
    } finally {
      lease.release();
      probing = false;
    }
  }, PROBE_INTERVAL_MS);

  return {
    address,
    update(next) {
      if (closed) return;
      // Both built before anything changes: bad PEM throws and the relay keeps working.
      const nextCertificate = certificateOf(next);
      const changed = nextCertificate.version !== certificate.version;
      pool.update(next);
      material = next;
      certificate = nextCertificate;
      if (changed) { for (const session of links.keys()) session.localChanged(); }
      log.debug("xDS relay uses new TLS material for new upstream streams", {});
    },
    stats: () => ({
      streams: calls.size,
      upstreamLive: [...links.values()].filter((l) => l.live).length,
      total,
    }),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(probe);
      for (const stop of [...calls]) stop();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      pool.close();
      await cache.flush();
    },
  };
}
