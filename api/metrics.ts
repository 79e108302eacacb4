import client from "prom-client";
import { VERSION } from "../core/version.ts";

/** The server's Prometheus metrics; one registry per server so tests never share counters. */
export class Metrics {
  readonly registry = new client.Registry();
  readonly httpRequests: client.Counter<"route" | "method" | "status">;
  readonly httpDuration: client.Histogram<"route" | "method">;
  readonly heartbeats: client.Counter<"result">;
  readonly certificatesIssued: client.Counter<"kind">;
  readonly certificatesRefused: client.Counter<"kind" | "reason">;
  readonly joinTokens: client.Counter<"result">;
  readonly proxies: client.Gauge<"kind">;
  readonly pushes: client.Histogram<"reason">;
  readonly nacks: client.Counter<"type">;
  readonly convergence: client.Histogram<"type">;

  /**
   * @param sources callbacks read at scrape time, so the hot paths pay
   * nothing for gauges.
   */
  constructor(sources: {
    objects: () => Promise<Record<string, number>>;
    revision: () => number;
    watchers: () => number;
    liveNodes: () => number;
    /** Earliest expiry (ms since epoch) of each node's current certificate. */
    leafExpiry?: () => Promise<Map<string, number>>;
    /** Expiry (ms since epoch) of each CA generation's root and intermediate. */
    caExpiry?: () => { generation: number; stage: string; root: number; intermediate: number }[];
  }) {
    const registers = [this.registry];
    this.httpRequests = new client.Counter({
      name: "ironmesh_http_requests_total",
      help: "HTTP requests by route pattern, method and status code",
      labelNames: ["route", "method", "status"],
      registers,
    });
    this.httpDuration = new client.Histogram({
      name: "ironmesh_http_request_duration_seconds",
      help: "HTTP request handling time by route pattern and method",
      labelNames: ["route", "method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.heartbeats = new client.Counter({
      name: "ironmesh_heartbeats_total",
      help: "Heartbeats received, by result: unchanged, changed (a health change), rejected",
      labelNames: ["result"],
      registers,
    });
    this.certificatesIssued = new client.Counter({
      name: "ironmesh_certificates_issued_total",
      help: "Workload certificates issued, by kind: enrol (join token) or renew",
      labelNames: ["kind"],
      registers,
    });
    this.certificatesRefused = new client.Counter({
      name: "ironmesh_certificates_refused_total",
      help: "Certificate requests refused, by kind and reason",
      labelNames: ["kind", "reason"],
      registers,
    });
    this.joinTokens = new client.Counter({
      name: "ironmesh_join_tokens_total",
      help: "Join token presentations, by result: used or refused",
      labelNames: ["result"],
      registers,
    });
    this.proxies = new client.Gauge({
      name: "ironmesh_xds_proxies",
      help: "Connected xDS streams by proxy kind (sidecar, proxyless)",
      labelNames: ["kind"],
      registers,
    });
    this.pushes = new client.Histogram({
      name: "ironmesh_xds_push_duration_seconds",
      help: "Time of one push, by reason (endpoints, registry, policy, trust)",
      labelNames: ["reason"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.nacks = new client.Counter({
      name: "ironmesh_xds_nacks_total",
      help: "Configurations proxies rejected, by resource type",
      labelNames: ["type"],
      registers,
    });
    this.convergence = new client.Histogram({
      name: "ironmesh_xds_convergence_seconds",
      help:
        "Time from the registry or trust change behind a configuration (or the request that asked for it) to the proxy's ACK, by resource type",
      labelNames: ["type"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    new client.Gauge({
      name: "ironmesh_build_info",
      help: "The running Ironmesh release (always 1), and the Deno that runs it",
      labelNames: ["version", "deno"],
      registers,
    }).set({ version: VERSION, deno: Deno.version.deno }, 1);
    new client.Gauge({
      name: "ironmesh_certificate_expiry_timestamp_seconds",
      help: "Expiry of each node's current workload certificate (Unix seconds)",
      labelNames: ["node"],
      registers,
      async collect() {
        this.reset();
        for (const [node, ms] of await sources.leafExpiry?.() ?? []) this.set({ node }, ms / 1000);
      },
    });
    new client.Gauge({
      name: "ironmesh_ca_expiry_timestamp_seconds",
      help: "Expiry of each CA generation's root and intermediate (Unix seconds)",
      labelNames: ["generation", "stage", "cert"],
      registers,
      collect() {
        this.reset();
        for (const g of sources.caExpiry?.() ?? []) {
          const labels = { generation: String(g.generation), stage: g.stage };
          this.set({ ...labels, cert: "root" }, g.root / 1000);
          this.set({ ...labels, cert: "intermediate" }, g.intermediate / 1000);
        }
      },
    });
    new client.Gauge({
      name: "ironmesh_registry_objects",
      help: "Registry objects by kind (service, node, instance)",
      labelNames: ["kind"],
      registers,
      async collect() {
        for (const [kind, n] of Object.entries(await sources.objects())) this.set({ kind }, n);
      },
    });
    new client.Gauge({
      name: "ironmesh_registry_revision",
      help: "Current registry revision",
      registers,
      collect() {
        this.set(sources.revision());
      },
    });
    new client.Gauge({
      name: "ironmesh_watches",
      help: "Open blocking queries and event streams",
      registers,
      collect() {
        this.set(sources.watchers());
      },
    });
    new client.Gauge({
      name: "ironmesh_live_nodes",
      help: "Nodes tracked by the heartbeat path",
      registers,
      collect() {
        this.set(sources.liveNodes());
      },
    });
  }
}
