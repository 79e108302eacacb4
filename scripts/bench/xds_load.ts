/**
 * The xDS load process, started by `scripts/bench/xds.ts` (never by hand):
 * it plays N proxyless gRPC clients, each holding one state-of-the-world ADS
 * stream to the server's loopback plaintext xDS listener and subscribing the
 * way `@grpc/grpc-js-xds` 1.14 does:
 *
 * - LDS for the listeners `svc-<k>.default` of the services it dials (proxy i
 *   dials service k = i mod S; with `shared`, also that service, as everyone
 *   calls `auth`; with `extra`, that many more), then RDS, CDS and EDS for the
 *   names the responses lead to, one type at a time; every response is ACKed
 *   (version_info and nonce echoed) before the next request;
 * - the node (`IRONMESH_NODE`, `IRONMESH_NAMESPACE`, `IRONMESH_PROXY`) rides on
 *   the first request of a stream only;
 * - a stream that ends is reopened at once if it had received a response,
 *   else after grpc-js' backoff (1 s, ×1.6, ±20 %, as grpc-js-xds' ADS
 *   backoff); a reopened stream asks for every type it knew at once, with the
 *   versions it last accepted; calls use `waitForReady`, so while the server
 *   is down they wait for the channel, which reconnects with grpc-js' own
 *   connection backoff (1 s, ×1.6, ±20 %).
 *
 * Proxies share HTTP/2 connections as `connections` channels (each its own
 * subchannel pool, so each is one TCP connection), like one per host.
 *
 * Protocol, one JSON object per line. Config: the JSON file named by the only
 * argument. Out (stdout): `{"event":"ready"}`, then answers to the commands
 * read from stdin:
 * - `{"cmd":"start"}` → opens every stream; `{"event":"served",…}` once every
 *   proxy has ACKed all four types.
 * - `{"cmd":"expect","id":n,"service":k,"endpoints":e}` →
 *   `{"event":"expecting","id":n}` at once, then `{"event":"changed",…}` once
 *   every proxy that dials service k has received and ACKed an EDS response
 *   with e endpoints for it.
 * - `{"cmd":"expectRoute","id":n,"service":k,"timeout":"3s"}` →
 *   `{"event":"expectingRoute","id":n}` at once, then `{"event":"routed",…}`
 *   once every proxy that dials service k has received and ACKed an RDS
 *   response whose version differs from the one it held when the command
 *   arrived and in which service k's first route's timeout
 *   (`max_stream_duration`, where gRPC reads it) is `timeout` (not checked
 *   when `timeout` is absent).
 * - `{"cmd":"reserved","after":t}` → `{"event":"reserved",…}` once every proxy
 *   holds a stream whose first response arrived after `t` (epoch ms) and has
 *   ACKed all four types on it.
 * - `{"cmd":"stats"}` → `{"event":"stats",…}`; `{"cmd":"exit"}` ends the process.
 *
 * Times are epoch milliseconds with sub-millisecond precision
 * (`performance.timeOrigin + performance.now()`), comparable with the
 * orchestrator's on the same machine.
 */
import * as grpc from "@grpc/grpc-js";
import process from "node:process";
import { TYPE_URLS } from "../../xds/generate/generate.ts";
import { decodeStrict, encodeStrict } from "../../xds/proto/codec.ts";

/** What the load process is asked to do. */
export interface XdsLoadConfig {
  /** `host:port` of the plaintext xDS listener. */
  target: string;
  proxies: number;
  services: number;
  /** HTTP/2 connections (channels) the streams are spread over. */
  connections: number;
  namespace: string;
  /** A service every proxy dials besides its own. Default: none. */
  shared?: number;
  /** How many more services each proxy dials (spread over the mesh). Default: 0. */
  extra?: number;
}

const LDS = TYPE_URLS.listeners;
const RDS = TYPE_URLS.routes;
const CDS = TYPE_URLS.clusters;
const EDS = TYPE_URLS.endpoints;
const TYPES = [LDS, RDS, CDS, EDS];
type TypeUrl = string;
const NEXT: Partial<Record<TypeUrl, TypeUrl>> = { [LDS]: RDS, [RDS]: CDS, [CDS]: EDS };

const PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const REQUEST = "envoy.service.discovery.v3.DiscoveryRequest";
const RESPONSE = "envoy.service.discovery.v3.DiscoveryResponse";

const now = () => performance.timeOrigin + performance.now();

interface Stream {
  call: grpc.ClientDuplexStream<Uint8Array, Uint8Array>;
  /** Last nonce received per type on this stream. */
  nonces: Map<TypeUrl, string>;
  /** Types ACKed on this stream. */
  acked: Set<TypeUrl>;
  firstResponseAt: number;
  /** When the fourth type was ACKed; 0 until then. */
  servedAt: number;
  sentNode: boolean;
  ended: boolean;
}

interface Proxy {
  index: number;
  /** The services it dials: its own first. */
  services: number[];
  channel: grpc.Client;
  /** Subscribed names per type (kept across streams, as the xDS client's watchers are). */
  names: Map<TypeUrl, string[]>;
  /** Last accepted version per type (sent on a new stream, as grpc-js-xds does). */
  versions: Map<TypeUrl, string>;
  stream: Stream | null;
  backoff: grpc.experimental.BackoffTimeout;
  /** What each resource named in the last responses: listener → route → cluster → EDS name. */
  next: Map<TypeUrl, Map<string, string>>;
  /** Endpoints per EDS name in the last EDS response. */
  endpoints: Map<string, number>;
  /** Each route configuration's first route's `max_stream_duration`, or `null`. */
  routeTimeouts: Map<string, string | null>;
}

/** The EDS name and route configuration service `k` leads to for `proxy`, as far as known. */
function chain(proxy: Proxy, k: number): { route?: string; eds?: string } {
  const route = proxy.next.get(LDS)!.get(listenerName(k));
  const cluster = route === undefined ? undefined : proxy.next.get(RDS)!.get(route);
  const eds = cluster === undefined ? undefined : proxy.next.get(CDS)!.get(cluster);
  return { ...(route !== undefined ? { route } : {}), ...(eds !== undefined ? { eds } : {}) };
}

function listenerName(k: number): string {
  return `svc-${k}.${config.namespace}`;
}

interface Expectation {
  id: number;
  endpoints: number;
  affected: number;
  done: Set<number>;
  first: number;
  last: number;
}

/** An `expectRoute`: the RDS version each affected proxy held when it was asked for. */
interface RouteExpectation {
  id: number;
  timeout: string | null;
  before: Map<number, string>;
  done: Set<number>;
  first: number;
  last: number;
}

const config = JSON.parse(await Deno.readTextFile(Deno.args[0]!)) as XdsLoadConfig;
const out = (event: Record<string, unknown>) => console.log(JSON.stringify(event));

const channels = Array.from(
  { length: config.connections },
  () =>
    new grpc.Client(config.target, grpc.credentials.createInsecure(), {
      // One subchannel pool per channel: each channel is its own TCP connection.
      "grpc.use_local_subchannel_pool": 1,
      // What grpc-js-xds sets on its ADS channel.
      "grpc.keepalive_time_ms": 5 * 60 * 1000,
    }),
);

const counters = {
  streamsOpened: 0,
  streamsEnded: 0,
  responses: 0,
  requests: 0,
  endedBy: {} as Record<string, number>,
  /** Responses that lacked the resource the proxy asked for. */
  missing: 0,
  /** Responses by type (LDS, RDS, CDS, EDS). */
  responsesByType: { LDS: 0, RDS: 0, CDS: 0, EDS: 0 },
};
const SHORT: Record<TypeUrl, keyof typeof counters.responsesByType | undefined> = {
  [LDS]: "LDS",
  [RDS]: "RDS",
  [CDS]: "CDS",
  [EDS]: "EDS",
};
/** The services proxy `i` dials: its own, the shared one, and `extra` more spread by a stride. */
function servicesOf(i: number): number[] {
  const own = i % config.services;
  const out = new Set([own]);
  if (config.shared !== undefined) out.add(config.shared);
  for (
    let j = 1;
    out.size <
      Math.min(config.services, 1 + (config.shared !== undefined ? 1 : 0) + (config.extra ?? 0));
    j++
  ) {
    out.add((own + j * 7919 + i) % config.services);
  }
  return [...out];
}

const proxies: Proxy[] = [];
for (let i = 0; i < config.proxies; i++) {
  const services = servicesOf(i);
  const proxy: Proxy = {
    index: i,
    services,
    channel: channels[i % config.connections]!,
    names: new Map([[LDS, services.map(listenerName).sort()]]),
    versions: new Map(),
    stream: null,
    backoff: null as unknown as grpc.experimental.BackoffTimeout,
    next: new Map([[LDS, new Map()], [RDS, new Map()], [CDS, new Map()]]),
    endpoints: new Map(),
    routeTimeouts: new Map(),
  };
  proxy.backoff = new grpc.experimental.BackoffTimeout(() => maybeStart(proxy));
  proxy.backoff.unref();
  proxies.push(proxy);
}
const byService = new Map<number, Proxy[]>();
for (const p of proxies) {
  for (const k of p.services) byService.set(k, [...(byService.get(k) ?? []), p]);
}

let servedCount = 0;
let startedAt = 0;
let servedReported = false;
const expectations = new Map<number, Expectation>();
const routeExpectations = new Map<number, RouteExpectation>();
let reservedAfter: number | null = null;

function send(proxy: Proxy, stream: Stream, type: TypeUrl, version: string, nonce: string) {
  const request: Record<string, unknown> = {
    type_url: type,
    resource_names: proxy.names.get(type) ?? [],
    ...(version ? { version_info: version } : {}),
    ...(nonce ? { response_nonce: nonce } : {}),
  };
  if (!stream.sentNode) {
    stream.sentNode = true;
    request.node = {
      id: `proxy-${proxy.index}`,
      user_agent_name: "grpc-node-js",
      user_agent_version: "1.14.7",
      locality: {},
      metadata: {
        IRONMESH_NODE: `proxy-${proxy.index}`,
        IRONMESH_NAMESPACE: config.namespace,
        IRONMESH_PROXY: "proxyless",
      },
    };
  }
  stream.call.write(encodeStrict(REQUEST, request));
  counters.requests++;
}

function maybeStart(proxy: Proxy): void {
  if (proxy.stream) return;
  const metadata = new grpc.Metadata({ waitForReady: true });
  const call = proxy.channel.makeBidiStreamRequest<Uint8Array, Uint8Array>(
    PATH,
    (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    (b) => b,
    metadata,
  );
  const stream: Stream = {
    call,
    nonces: new Map(),
    acked: new Set(),
    firstResponseAt: 0,
    servedAt: 0,
    sentNode: false,
    ended: false,
  };
  proxy.stream = stream;
  counters.streamsOpened++;
  proxy.backoff.runOnce();
  // Every type with names, in order (a first stream has only LDS).
  for (const type of TYPES) {
    if (proxy.names.has(type)) send(proxy, stream, type, proxy.versions.get(type) ?? "", "");
  }
  call.on("data", (bytes: Uint8Array) => {
    try {
      onResponse(proxy, stream, bytes);
    } catch (error) {
      console.error(`proxy-${proxy.index}: ${(error as Error).stack}`);
      call.cancel();
    }
  });
  call.on("error", () => {});
  call.on("status", (status: grpc.StatusObject) => {
    const key = grpc.status[status.code] ?? String(status.code);
    counters.endedBy[key] = (counters.endedBy[key] ?? 0) + 1;
    onEnd(proxy, stream);
  });
}

function onEnd(proxy: Proxy, stream: Stream): void {
  if (stream.ended) return;
  stream.ended = true;
  counters.streamsEnded++;
  stream.call.end();
  if (proxy.stream !== stream) return;
  if (stream.servedAt > 0) servedCount--;
  proxy.stream = null;
  // grpc-js-xds: the backoff timer restarts the stream when it fires; if it is not running
  // (a response arrived on this stream), restart now.
  if (!proxy.backoff.isRunning()) maybeStart(proxy);
}

function onResponse(proxy: Proxy, stream: Stream, bytes: Uint8Array): void {
  const at = now();
  counters.responses++;
  if (stream.firstResponseAt === 0) stream.firstResponseAt = at;
  proxy.backoff.stop();
  proxy.backoff.reset();
  const response = decodeStrict(RESPONSE, bytes) as {
    version_info?: string;
    type_url?: string;
    nonce?: string;
    resources?: Record<string, unknown>[];
  };
  const type = response.type_url as TypeUrl;
  if (!TYPES.includes(type)) return;
  counters.responsesByType[SHORT[type]!]++;
  const version = response.version_info ?? "";
  const nonce = response.nonce ?? "";
  stream.nonces.set(type, nonce);
  const resources = response.resources ?? [];
  // What each resource points at: the next type's name (or, for EDS, the endpoint count).
  // deno-lint-ignore no-explicit-any
  for (const r of resources as Record<string, any>[]) {
    if (type === LDS) {
      const route = r.api_listener?.api_listener?.rds?.route_config_name;
      if (route) proxy.next.get(LDS)!.set(r.name, route);
    } else if (type === RDS) {
      const route = r.virtual_hosts?.[0]?.routes?.[0]?.route;
      if (route?.cluster) proxy.next.get(RDS)!.set(r.name, route.cluster);
      proxy.routeTimeouts.set(r.name, route?.max_stream_duration?.max_stream_duration ?? null);
    } else if (type === CDS) {
      proxy.next.get(CDS)!.set(r.name, r.eds_cluster_config?.service_name ?? r.name);
    } else {
      let count = 0;
      for (const locality of r.endpoints ?? []) count += locality.lb_endpoints?.length ?? 0;
      proxy.endpoints.set(r.cluster_name, count);
    }
  }
  if (resources.length < (proxy.names.get(type)?.length ?? 0)) counters.missing++;
  // ACK: accept the version, echo the nonce.
  proxy.versions.set(type, version);
  send(proxy, stream, type, version, nonce);
  stream.acked.add(type);
  const nextType = NEXT[type];
  if (nextType) {
    const names = [...new Set(proxy.next.get(type)!.values())].sort();
    const old = proxy.names.get(nextType) ?? [];
    if (names.length > 0 && names.join("\n") !== old.join("\n")) {
      proxy.names.set(nextType, names);
      send(
        proxy,
        stream,
        nextType,
        proxy.versions.get(nextType) ?? "",
        stream.nonces.get(nextType) ?? "",
      );
    }
  }
  if (stream.servedAt === 0 && stream.acked.size === TYPES.length) {
    stream.servedAt = at;
    servedCount++;
    if (!servedReported && servedCount === proxies.length && startedAt > 0) {
      servedReported = true;
      out({ event: "served", startedAt, at, ...counters });
    }
    checkReserved();
  }
  if (type === EDS) {
    for (const k of proxy.services) checkEndpoints(proxy, k);
  }
  if (type === RDS) {
    for (const k of proxy.services) checkRoute(proxy, k, version);
  }
}

function checkEndpoints(proxy: Proxy, service: number): void {
  const expectation = expectations.get(service);
  const eds = chain(proxy, service).eds;
  if (
    expectation && eds !== undefined && proxy.endpoints.get(eds) === expectation.endpoints &&
    !expectation.done.has(proxy.index)
  ) {
    const ackedAt = now();
    expectation.done.add(proxy.index);
    if (expectation.first === 0) expectation.first = ackedAt;
    expectation.last = ackedAt;
    if (expectation.done.size === expectation.affected) {
      expectations.delete(service);
      out({
        event: "changed",
        id: expectation.id,
        first: expectation.first,
        last: expectation.last,
        proxies: expectation.affected,
      });
    }
  }
}

function checkRoute(proxy: Proxy, service: number, version: string): void {
  const expectation = routeExpectations.get(service);
  const route = chain(proxy, service).route;
  const timeout = route === undefined ? undefined : proxy.routeTimeouts.get(route);
  if (
    expectation && !expectation.done.has(proxy.index) &&
    version !== expectation.before.get(proxy.index) &&
    (expectation.timeout === null || timeout === expectation.timeout)
  ) {
    const ackedAt = now();
    expectation.done.add(proxy.index);
    if (expectation.first === 0) expectation.first = ackedAt;
    expectation.last = ackedAt;
    if (expectation.done.size === expectation.before.size) {
      routeExpectations.delete(service);
      out({
        event: "routed",
        id: expectation.id,
        first: expectation.first,
        last: expectation.last,
        proxies: expectation.before.size,
        timeout,
      });
    }
  }
}

function checkReserved(): void {
  if (reservedAfter === null) return;
  let last = 0;
  for (const p of proxies) {
    const s = p.stream;
    if (!s || s.servedAt === 0 || s.firstResponseAt <= reservedAfter) return;
    last = Math.max(last, s.servedAt);
  }
  const after = reservedAfter;
  reservedAfter = null;
  const spread = (values: number[]) => {
    const sorted = values.map((v) => v - after).sort((a, b) => a - b);
    return { min: sorted[0], p50: sorted[Math.floor(sorted.length / 2)], max: sorted.at(-1) };
  };
  out({
    event: "reserved",
    at: last,
    // Relative to `after`: when streams got their first response, and when they were served.
    firstResponse: spread(proxies.map((p) => p.stream!.firstResponseAt)),
    served: spread(proxies.map((p) => p.stream!.servedAt)),
    ...counters,
  });
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

out({ event: "ready" });

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let text = "";
for await (const chunk of lines) {
  text += chunk;
  let end;
  while ((end = text.indexOf("\n")) >= 0) {
    const line = text.slice(0, end);
    text = text.slice(end + 1);
    if (!line.trim()) continue;
    // deno-lint-ignore no-explicit-any
    const cmd = JSON.parse(line) as Record<string, any>;
    if (cmd.cmd === "start") {
      startedAt = now();
      for (const p of proxies) maybeStart(p);
    } else if (cmd.cmd === "expect") {
      const affected = byService.get(cmd.service)?.length ?? 0;
      expectations.set(cmd.service, {
        id: cmd.id,
        endpoints: cmd.endpoints,
        affected,
        done: new Set(),
        first: 0,
        last: 0,
      });
      out({ event: "expecting", id: cmd.id, proxies: affected });
    } else if (cmd.cmd === "expectRoute") {
      const affected = byService.get(cmd.service) ?? [];
      routeExpectations.set(cmd.service, {
        id: cmd.id,
        timeout: cmd.timeout ?? null,
        before: new Map(affected.map((p) => [p.index, p.versions.get(RDS) ?? ""])),
        done: new Set(),
        first: 0,
        last: 0,
      });
      out({ event: "expectingRoute", id: cmd.id, proxies: affected.length });
    } else if (cmd.cmd === "reserved") {
      reservedAfter = cmd.after;
      checkReserved();
    } else if (cmd.cmd === "stats") {
      const served = proxies.filter((p) => p.stream && p.stream.servedAt > 0).length;
      const open = proxies.filter((p) => p.stream).length;
      const wrongEndpoints = proxies.filter((p) =>
        p.services.some((k) =>
          (p.endpoints.get(chain(p, k).eds ?? "") ?? 0) <= 0
        )
      ).length;
      out({ event: "stats", cpuMs: cpuMs(), served, open, wrongEndpoints, ...counters });
    } else if (cmd.cmd === "exit") {
      for (const p of proxies) {
        p.backoff.stop();
        p.stream?.call.cancel();
      }
      for (const c of channels) c.close();
      Deno.exit(0);
    }
  }
}
