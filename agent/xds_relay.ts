/**
 * The agent's local xDS endpoint. Proxyless gRPC applications
 * (`@grpc/grpc-js-xds`) can only reach an xDS server in plaintext, and the
 * server's gRPC port demands mTLS with a mesh certificate; so, like Istio's
 * agent, ours listens on loopback without TLS and relays each application
 * stream to the server over its own mTLS identity. Envoy sidecars on the
 * host use the same endpoint (see `envoy.ts`).
 *
 * One application stream is one upstream stream: messages are passed on
 * unchanged in both directions (raw bytes), a half-close or a cancellation on
 * one side ends the other, and the server's final status reaches the
 * application as it is. When the server cannot be reached the application's
 * stream fails with UNAVAILABLE at once; its xDS client retries with backoff
 * and keeps its last configuration meanwhile.
 *
 * One exception: the sidecar's workload certificate. Envoy asks for the SDS
 * secret `default` on its ADS stream, and the relay answers that itself with
 * the agent's certificate chain and private key, so the key never leaves the
 * host and the server never serves it; the rest of the request (`ROOTCA`)
 * goes to the server. After a renewal every subscribed Envoy gets the new
 * certificate on its running stream. See `sds.ts` for how requests are split;
 * server→application messages are never decoded.
 *
 * The server sees the agent's certificate, so every stream relayed by an
 * agent counts as that agent's node and identity: the loopback endpoint
 * grants what the agent is, to processes on its host only.
 *
 * After a certificate renewal or a trust bundle change ({@link XdsRelay.update})
 * new streams use a channel built on the new material; streams already
 * running stay on the channel they started on, which closes once its last
 * stream ends. A stream never breaks because of a renewal (and its Envoy gets
 * the renewed `default` on it).
 */
import * as grpc from "@grpc/grpc-js";
import { isIP } from "node:net";
import { checkServerIdentity } from "node:tls";
import { formatHostPort, type HostPort, isLoopback } from "../core/address.ts";
import type { Logger } from "../core/log.ts";
import { type WorkloadCertificate, workloadCertificate } from "../core/workload_secret.ts";
import { SdsSplitter } from "./sds.ts";
import type { TlsMaterial } from "./tls_clients.ts";

/** The full method name of state-of-the-world ADS. */
export const ADS_METHOD =
  "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

/** The default loopback address of the local xDS endpoint. */
export const DEFAULT_LOCAL_XDS_ADDR = "127.0.0.1:15010";
/** The port of the server's gRPC (xDS) address when only its host is known. */
export const DEFAULT_XDS_SERVER_PORT = 15012;

const identity = (bytes: Buffer): Buffer => bytes;

/** Both directions are raw bytes: the relay never decodes a message. */
const relayServiceDefinition: grpc.ServiceDefinition = {
  streamAggregatedResources: {
    path: ADS_METHOD,
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: "StreamAggregatedResources",
  },
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
  /** Extra options for the upstream channels (tests shorten the backoff). */
  channelOptions?: grpc.ChannelOptions;
}

/** Counts of what the relay is doing, for logs and tests. */
export interface RelayStats {
  /** Application streams open now. */
  streams: number;
  /** Upstream channels open now (the current one plus retired ones still in use). */
  channels: number;
  /** Application streams accepted since the start. */
  total: number;
}

/** A running relay; see the module comment. */
export interface XdsRelay {
  /** The address actually bound (port 0 resolved). */
  readonly address: HostPort;
  /**
   * Makes new upstream streams use `material`; running streams keep theirs.
   * A new certificate goes to every Envoy subscribed to `default` at once.
   */
  update(material: TlsMaterial): void;
  stats(): RelayStats;
  /** Stops listening and cancels every stream, both sides. */
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

/** The host part of `host:port` or `[ipv6]:port`, unbracketed. */
function upstreamHost(address: string): string {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):\d+$/.exec(address);
  if (!m) throw new Error(`Invalid xDS server address "${address}": expected HOST:PORT`);
  return m[1] ?? m[2]!;
}

interface Channel {
  client: grpc.Client;
  key: string;
  streams: number;
  retired: boolean;
  closed: boolean;
}

function materialKey(m: TlsMaterial): string {
  return JSON.stringify([m.caPem, m.certPem ?? "", m.keyPem ?? ""]);
}

function certificateOf(material: TlsMaterial): WorkloadCertificate {
  if (material.certPem === undefined || material.keyPem === undefined) {
    throw new Error("The xDS relay needs the agent's certificate and key");
  }
  return workloadCertificate(material.certPem, material.keyPem);
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
  const channelOptions: grpc.ChannelOptions = {
    // The application's own client enforces its message limits; the relay passes everything.
    "grpc.max_receive_message_length": -1,
    "grpc.max_send_message_length": -1,
    // A server outage should not leave proxies waiting grpc's default 2 minutes once it is back.
    "grpc.max_reconnect_backoff_ms": 10_000,
    // Find a server that vanished without closing its connections.
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    ...options.channelOptions,
  };
  // An IP literal is no valid TLS server name (RFC 6066), and Deno's TLS refuses one: send a
  // placeholder name and check the certificate against the IP itself (its IP SAN).
  const target = upstreamHost(options.upstream);
  const verify: grpc.VerifyOptions = {};
  if (isIP(target) !== 0) {
    channelOptions["grpc.ssl_target_name_override"] = "localhost";
    verify.checkServerIdentity = (_name, cert) => checkServerIdentity(target, cert);
  }
  const newChannel = (material: TlsMaterial): Channel => {
    if (material.certPem === undefined || material.keyPem === undefined) {
      throw new Error("The xDS relay needs the agent's certificate and key");
    }
    const credentials = grpc.credentials.createSsl(
      Buffer.from(material.caPem),
      Buffer.from(material.keyPem),
      Buffer.from(material.certPem),
      verify,
    );
    return {
      client: new grpc.Client(options.upstream, credentials, channelOptions),
      key: materialKey(material),
      streams: 0,
      retired: false,
      closed: false,
    };
  };
  const closeIfIdle = (channel: Channel) => {
    if (channel.retired && channel.streams === 0 && !channel.closed) {
      channel.closed = true;
      channel.client.close();
    }
  };

  let current = newChannel(options.material);
  let certificate = certificateOf(options.material);
  const channels = new Set<Channel>([current]);
  const calls = new Set<() => void>();
  const splitters = new Set<SdsSplitter>();
  let total = 0;
  let closed = false;

  const relay = (app: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    total++;
    const channel = current;
    channel.streams++;
    const id = total;
    let finished = false;
    const upstream = channel.client.makeBidiStreamRequest(
      ADS_METHOD,
      identity,
      identity,
      new grpc.Metadata(),
      {},
    );
    const sds = new SdsSplitter({
      send: (bytes) => {
        if (!finished) app.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      },
      certificate: () => certificate,
      log,
      stream: id,
    });
    splitters.add(sds);
    const finish = () => {
      if (finished) return false;
      finished = true;
      splitters.delete(sds);
      calls.delete(cancelBoth);
      channel.streams--;
      closeIfIdle(channel);
      if (channel.closed) channels.delete(channel);
      return true;
    };
    // Used by close(): the application is told the relay went away.
    const cancelBoth = () => {
      if (!finish()) return;
      upstream.cancel();
      app.emit("error", { code: grpc.status.UNAVAILABLE, details: "The agent is shutting down" });
    };
    calls.add(cancelBoth);

    // Application → server, with backpressure both ways; the agent answers `default` itself.
    app.on("data", (bytes: Buffer) => {
      if (finished) return;
      const up = sds.fromApp(bytes);
      if (up === null) return;
      const message = up === bytes ? bytes : Buffer.from(up.buffer, up.byteOffset, up.byteLength);
      if (!upstream.write(message)) app.pause();
    });
    upstream.on("drain", () => app.resume());
    app.on("end", () => {
      if (!finished) upstream.end();
    });
    app.on("cancelled", () => {
      if (finish()) upstream.cancel();
    });

    // Server → application.
    upstream.on("data", (bytes: Buffer) => {
      if (!app.write(bytes)) upstream.pause();
    });
    app.on("drain", () => upstream.resume());
    upstream.on("status", (status: grpc.StatusObject) => {
      if (!finish()) return;
      if (status.code === grpc.status.OK) {
        app.end();
        return;
      }
      // The application's client retries with backoff, which bounds these lines.
      log.warn("xDS stream to the server failed", {
        stream: id,
        upstream: options.upstream,
        code: grpc.status[status.code],
        details: status.details,
      });
      app.emit("error", { code: status.code, details: status.details });
    });
    // The status event carries the outcome; an error event without a listener would throw.
    upstream.on("error", () => {});
  };

  const server = new grpc.Server({
    "grpc.max_receive_message_length": 4 * 1024 * 1024,
  });
  server.addService(relayServiceDefinition, {
    streamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      if (closed) {
        call.emit("error", { code: grpc.status.UNAVAILABLE, details: "The agent is stopping" });
        return;
      }
      relay(call);
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      formatHostPort(options.listen),
      grpc.ServerCredentials.createInsecure(),
      (error, bound) => error ? reject(error) : resolve(bound),
    );
  }).catch((error) => {
    for (const c of channels) c.client.close();
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

  return {
    address,
    update(material) {
      if (closed) return;
      if (materialKey(material) === current.key) return;
      // Built before the old one retires: bad PEM throws and the relay keeps a working channel.
      const next = newChannel(material);
      const old = current;
      current = next;
      certificate = certificateOf(material);
      for (const sds of splitters) sds.renewed();
      channels.add(next);
      old.retired = true;
      closeIfIdle(old);
      if (old.closed) channels.delete(old);
      log.debug("xDS relay uses new TLS material for new streams", { openOnOld: old.streams });
    },
    stats: () => ({ streams: calls.size, channels: channels.size, total }),
    async close() {
      if (closed) return;
      closed = true;
      for (const cancel of [...calls]) cancel();
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
      for (const c of channels) {
        c.retired = true;
        c.closed = true;
        c.client.close();
      }
      channels.clear();
    },
  };
}
