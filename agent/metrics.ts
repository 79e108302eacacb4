/**
 * The agent's Prometheus metrics and the loopback endpoint that serves them
 * (`--metrics-addr`, default `127.0.0.1:15020`, the port Istio's agent uses
 * for the same): DNS queries and answers, the local xDS endpoint's streams
 * and cache, Envoy's restarts. One registry per agent, so tests never share
 * counters. The endpoint runs on the runtime's own HTTP server.
 */
import client from "prom-client";
import { formatHostPort, type HostPort } from "../core/address.ts";
import type { Logger } from "../core/log.ts";
import type { DnsEvents } from "./dns_server.ts";
import type { RelayEvents } from "./xds_relay.ts";

/** The default address of the metrics endpoint. */
export const DEFAULT_METRICS_ADDR = "127.0.0.1:15020";

/** Question types counted by name; any other is `other`, so label values stay bounded. */
const DNS_TYPES = new Set(["A", "AAAA", "SRV", "SOA", "ANY", "PTR", "TXT", "none"]);

/** See the module comment. */
export class AgentMetrics {
  readonly registry = new client.Registry();
  readonly #dnsQueries: client.Counter<"type" | "transport">;
  readonly #dnsResponses: client.Counter<"rcode" | "transport">;
  readonly #dnsDuration: client.Histogram;
  readonly #xdsStreams: client.Gauge<"variant">;
  readonly #xdsFromCache: client.Counter<"type">;
  readonly #xdsUpstreamFailures: client.Counter;
  readonly #envoyRestarts: client.Counter;
  readonly #envoyUp: client.Gauge;

  constructor() {
    const registers = [this.registry];
    this.#dnsQueries = new client.Counter({
      name: "ironmesh_agent_dns_queries_total",
      help: "DNS queries received, by question type and transport",
      labelNames: ["type", "transport"],
      registers,
    });
    this.#dnsResponses = new client.Counter({
      name: "ironmesh_agent_dns_responses_total",
      help: "DNS responses sent, by RCODE (forwarded: the host's resolver answered)",
      labelNames: ["rcode", "transport"],
      registers,
    });
    this.#dnsDuration = new client.Histogram({
      name: "ironmesh_agent_dns_query_duration_seconds",
      help: "Time from a DNS query's arrival to its answer",
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
      registers,
    });
    this.#xdsStreams = new client.Gauge({
      name: "ironmesh_agent_xds_streams",
      help: "Client streams open on the local xDS endpoint",
      labelNames: ["variant"],
      registers,
    });
    this.#xdsFromCache = new client.Counter({
      name: "ironmesh_agent_xds_cache_responses_total",
      help: "Responses to local xDS clients made from the cache while the server was away",
      labelNames: ["type"],
      registers,
    });
    this.#xdsUpstreamFailures = new client.Counter({
      name: "ironmesh_agent_xds_upstream_failures_total",
      help: "Upstream xDS streams to the server that failed (each is retried)",
      registers,
    });
    this.#envoyRestarts = new client.Counter({
      name: "ironmesh_agent_envoy_restarts_total",
      help: "Times the supervised Envoy exited and was started again",
      registers,
    });
    this.#envoyUp = new client.Gauge({
      name: "ironmesh_agent_envoy_up",
      help: "1 while the supervised Envoy runs, else 0",
      registers,
    });
  }

  /** The hooks of the DNS server. */
  dns(): DnsEvents {
    return {
      query: (type, transport) =>
        this.#dnsQueries.inc({ type: DNS_TYPES.has(type) ? type : "other", transport }),
      response: (rcode, transport) => this.#dnsResponses.inc({ rcode, transport }),
      duration: (seconds) => this.#dnsDuration.observe(seconds),
    };
  }

  /** The hooks of the local xDS endpoint. */
  relay(): RelayEvents {
    return {
      stream: (variant, delta) => this.#xdsStreams.inc({ variant }, delta),
      servedFromCache: (typeUrl) =>
        this.#xdsFromCache.inc({ type: typeUrl.slice(typeUrl.lastIndexOf(".") + 1) }),
      upstreamFailure: () => this.#xdsUpstreamFailures.inc(),
    };
  }

  /** Envoy started (`true`) or exited (`false`). */
  envoy(up: boolean): void {
    this.#envoyUp.set(up ? 1 : 0);
  }

  /** Envoy was started again after it exited. */
  envoyRestarted(): void {
    this.#envoyRestarts.inc();
  }
}

/** A running metrics endpoint. */
export interface MetricsServer {
  readonly address: HostPort;
  close(): Promise<void>;
}

/** Serves `GET /metrics` (Prometheus text) on `listen`; rejects when it cannot bind. */
export function serveMetrics(
  metrics: AgentMetrics,
  listen: HostPort,
  log: Logger,
): Promise<MetricsServer> {
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname: listen.host,
        port: listen.port,
        onListen: (addr) => {
          const address = { host: listen.host, port: (addr as Deno.NetAddr).port };
          log.info("Metrics endpoint listening", { address: formatHostPort(address) });
          resolve({ address, close: () => server.shutdown() });
        },
        onError: (error) => {
          log.error("Metrics endpoint failed", { error });
          return new Response("Internal error\n", { status: 500 });
        },
      }, async (request) => {
        const { pathname } = new URL(request.url);
        if (pathname !== "/metrics") return new Response("Not found\n", { status: 404 });
        if (request.method !== "GET") {
          return new Response("Method not allowed\n", { status: 405, headers: { allow: "GET" } });
        }
        return new Response(await metrics.registry.metrics(), {
          headers: { "content-type": metrics.registry.contentType },
        });
      });
    } catch (error) {
      reject(
        new Error(
          `Cannot listen on metrics address ${formatHostPort(listen)}: ${
            error instanceof Error ? error.message : String(error)
          }`,
        ),
      );
    }
  });
}
