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
 * No HTTP/2 of the agent runs on grpc-js: under Deno it sits on `node:http2`
 * and its native nghttp2 session, which aborted the agent process when the
 * server went away under open streams (issue 12). The upstream streams run
 * over the runtime's `fetch` (`grpc_fetch.ts`), and the clients' side is the
 * runtime's own HTTP/2 server (`Deno.serve`, cleartext HTTP/2 with prior
 * knowledge, as gRPC clients speak it); both are the runtime's Rust HTTP/2,
 * which reports a vanished peer as an error. `Deno.serve` cannot send HTTP/2
 * trailers, so a stream the relay ends carries its gRPC status only if
 * nothing was sent on it yet (a "trailers-only" response: the status in the
 * headers); later, the stream just ends and the client sees `INTERNAL` (or
 * `UNAVAILABLE` when the agent stops and closes the connection) and
 * reconnects, as xDS clients do after any status. The relay ends streams only
 * when the client ended them, sent something that is not xDS, or the agent
 * stops. A small probe (gRPC health, every {@link PROBE_INTERVAL_MS}) finds a
 * server that vanished without closing its connections, and opens fresh ones.
 *
 * The agent answers the sidecar's workload certificate (SDS `default`)
 * itself, so the key never leaves the host (`sds.ts`). After a certificate
 * renewal or a trust bundle change ({@link XdsRelay.update}) new upstream
 * streams use the new material, and every Envoy subscribed to `default` gets
 * the new certificate on its running stream.
 */
// Only the status codes' names and numbers: no grpc-js channel or server runs in the agent.
import * as grpc from "@grpc/grpc-js";
import { formatHostPort, type HostPort, isLoopback } from "../core/address.ts";
import { HEALTH_CHECK_PATH } from "../core/grpc_health.ts";
import type { Logger } from "../core/log.ts";
import { workloadCertificate } from "../core/workload_secret.ts";
import { backoffDelay } from "./backoff.ts";
import {
  type CallStatus,
  frame,
  FrameReader,
  type GrpcStream,
  grpcUnary,
  openGrpcStream,
} from "./grpc_fetch.ts";
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

/** The largest message a client may send, as grpc-js servers allow by default. */
const MAX_CLIENT_MESSAGE = 4 * 1024 * 1024;

/** The headers of a gRPC answer; the status alone makes it "trailers-only". */
function grpcHeaders(status?: { code: number; details: string }): Headers {
  const headers = new Headers({ "content-type": "application/grpc" });
  if (status !== undefined) {
    headers.set("grpc-status", String(status.code));
    headers.set("grpc-message", percentEncode(status.details));
  }
  return headers;
}

/** `grpc-message` as gRPC over HTTP/2 spells it: UTF-8, `%XX` outside printable ASCII and for `%`. */
function percentEncode(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25
      ? String.fromCharCode(byte)
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** A call refused before anything was sent: the status in the headers, no body. */
function trailersOnly(code: number, details: string): Response {
  return new Response(null, { headers: grpcHeaders({ code, details }) });
}

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

  /** One client stream: a session, its upstream link, and the HTTP/2 stream to the client. */
  const serve = (variant: "sotw" | "delta", request: Request): Promise<Response> => {
    if (closed) {
      return Promise.resolve(trailersOnly(grpc.status.UNAVAILABLE, "The agent is stopping"));
    }
    const id = ++total;
    let finished = false;
    // The response's headers wait for its first message, so that a stream refused before
    // anything was sent carries its status (trailers-only); after that, see the module comment.
    let respond!: (response: Response) => void;
    const response = new Promise<Response>((resolve) => respond = resolve);
    let body: ReadableStreamDefaultController<Uint8Array> | undefined;
    const sessionOptions: SessionOptions = {
      id,
      cache,
      local,
      log,
      wantUpstream: () => link.ensure(),
      down: (bytes) => {
        if (finished) return;
        if (body === undefined) {
          respond(
            new Response(
              new ReadableStream<Uint8Array>({
                start: (c) => void (body = c),
                cancel: () => void finish("the client cancelled it"),
              }),
              { headers: grpcHeaders() },
            ),
          );
        }
        try {
          body!.enqueue(frame(bytes));
        } catch {
          // The client went away; the cancel or the request's end finishes the stream.
        }
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
    /** Ends the stream once; `status`, when given, goes to the client if nothing was sent yet. */
    const finish = (how: string, status?: { code: number; details: string }): boolean => {
      if (finished) return false;
      finished = true;
      link.close();
      links.delete(session);
      calls.delete(stop);
      options.events?.stream?.(variant, -1);
      log.info("Local xDS client stream ended", { stream: id, how });
      if (body === undefined) {
        respond(trailersOnly(status?.code ?? grpc.status.OK, status?.details ?? ""));
      } else {
        try {
          body.close();
        } catch {
          // The client already went away.
        }
      }
      return true;
    };
    // Used by close(): the client is told the agent went away.
    const stop = () =>
      void finish("the agent is stopping", {
        code: grpc.status.UNAVAILABLE,
        details: "The agent is shutting down",
      });
    calls.add(stop);
    const notXds = (error: unknown) => {
      const details = `Invalid xDS request: ${error instanceof Error ? error.message : error}`;
      log.warn("Ending a local xDS stream: the client sent something that is not xDS", {
        stream: id,
        details,
      });
      finish("not xDS", { code: grpc.status.INVALID_ARGUMENT, details });
    };
    (async () => {
      const reader = new FrameReader({ maxMessageBytes: MAX_CLIENT_MESSAGE });
      try {
        for await (const chunk of request.body ?? []) {
          if (finished) return;
          try {
            for (const bytes of reader.push(chunk)) {
              if (finished) return;
              session.fromClient(bytes);
            }
          } catch (error) {
            notXds(error);
            return;
          }
        }
      } catch {
        // The request body failed: the client reset the stream or its connection went away.
        finish("the client cancelled it");
        return;
      }
      finish("the client ended it");
    })();
    return response;
  };

  const methods = new Map([[ADS_METHOD, "sotw" as const], [DELTA_ADS_METHOD, "delta" as const]]);
  const handler = (request: Request): Response | Promise<Response> => {
    const variant = methods.get(new URL(request.url).pathname);
    if (request.method !== "POST" || variant === undefined) {
      return trailersOnly(
        grpc.status.UNIMPLEMENTED,
        `No such method: ${new URL(request.url).pathname}`,
      );
    }
    return serve(variant, request);
  };
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    // The runtime's own HTTP/2 server (cleartext, prior knowledge, as gRPC clients speak it),
    // not grpc-js: see the module comment.
    server = Deno.serve({
      hostname: options.listen.host,
      port: options.listen.port,
      onListen: () => {},
      onError: (error) => {
        log.warn("Local xDS endpoint: request failed", { error });
        return new Response(null, { status: 500 });
      },
    }, handler);
  } catch (error) {
    pool.close();
    throw new Error(
      `Cannot listen on local xDS address ${formatHostPort(options.listen)}: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }
  const port = server.addr.port;
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
      await grpcUnary(
        lease.client,
        new URL(HEALTH_CHECK_PATH, base),
        new Uint8Array(),
        AbortSignal.timeout(5_000),
      );
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
      await server.shutdown();
      pool.close();
      await cache.flush();
    },
  };
}
