/**
 * The agent's configuration file (YAML or JSON): the node, its heartbeat, the
 * services it registers with their health checks, and the upstreams its local
 * Envoy will expose. Every field is described here; unknown fields are refused
 * so a typo never silently turns into a default.
 */
import { z } from "zod";
import { LEVELS } from "./log.ts";
import { durationSchema, formatDuration } from "./duration.ts";
import { labelsSchema } from "./labels.ts";
import { HEARTBEAT_INTERVAL_BOUNDS, ipAddress, labelName, portNumber, PROTOCOLS } from "./model.ts";
import { nodeName } from "./names.ts";
import { fieldIssue, parseConfigText } from "./validate.ts";
import { ENVOY_ADMIN } from "./envoy_bootstrap.ts";

/** Default heartbeat and check interval, in milliseconds. */
export const DEFAULT_INTERVAL_MS = 5_000;
/** Default check timeout, in milliseconds (lowered to the interval when that is shorter). */
export const DEFAULT_CHECK_TIMEOUT_MS = 1_000;

/** The domain of the agent's DNS names by default. */
export const DEFAULT_DNS_DOMAIN = "ironmesh";
/** The TTL of the agent's DNS answers by default, in milliseconds. */
export const DEFAULT_DNS_TTL_MS = 5_000;
/** How often proxyless gRPC apps re-read their certificate files by default, in milliseconds. */
export const DEFAULT_GRPC_REFRESH_MS = 5_000;
/** Where the agent serves xDS to local clients when `localXdsAddr` is not set. */
export const DEFAULT_LOCAL_XDS_ADDR = "127.0.0.1:15010";

/** A DNS domain: dot-separated DNS-1123 labels, at most 200 characters, no trailing dot. */
const dnsDomain = z.string().max(200, "Must be at most 200 characters").regex(
  /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/,
  'Must be lower-case DNS labels separated by dots, e.g. "ironmesh" or "mesh.internal"',
);

/** The kinds of health check, in the order the error messages list them. */
export const CHECK_KINDS = ["http", "tcp", "grpc", "exec"] as const;

/** What a health check probes; exactly one kind per check. */
export type CheckTarget =
  | { kind: "http"; url: string }
  | { kind: "tcp"; hostname: string; port: number }
  | { kind: "grpc"; hostname: string; port: number; service: string }
  | { kind: "exec"; command: [string, ...string[]] };

/** A parsed health check: what to probe, how often, and how many outcomes change its status. */
export interface CheckConfig {
  target: CheckTarget;
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/;

/** `host:port` or `[ipv6]:port`, parsed; host names are fine here because the agent dials them itself. */
const hostPort = z.string().transform((text, ctx) => {
  const match = HOST_PORT.exec(text);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) {
    fieldIssue(
      ctx,
      [],
      `Invalid address "${text}": use host:port or [ipv6]:port with a port from 1 to 65535`,
    );
    return z.NEVER;
  }
  return { hostname: match[1] ?? match[2]!, port };
});

const thresholdSchema = z.number().int("Must be an integer").min(1, "Must be between 1 and 100")
  .max(100, "Must be between 1 and 100");

const checkSchema = z.strictObject({
  http: z.url({ protocol: /^https?$/, error: "Must be an http:// or https:// URL" }).optional()
    .describe("URL probed with GET; a 2xx or 3xx answer passes (redirects are not followed)"),
  tcp: hostPort.optional().describe("host:port to connect to; an accepted connection passes"),
  grpc: hostPort.optional().describe(
    "host:port of a gRPC server probed with grpc.health.v1.Health/Check; SERVING passes",
  ),
  grpcService: z.string().max(256).optional().describe(
    'Service name sent in the gRPC health request; default "" (the whole server)',
  ),
  exec: z.array(z.string().min(1, "Must not be empty")).min(1, "Must name a program").optional()
    .describe("Program and arguments run without a shell; exit status 0 passes"),
  interval: durationSchema({ min: 100, max: 600_000 }).default(DEFAULT_INTERVAL_MS).describe(
    "Time between two runs of the check, e.g. 5s; default 5s, between 100ms and 10m",
  ),
  timeout: durationSchema({ min: 1, max: 600_000 }).optional().describe(
    "Time after which a run fails; default 1s (or the interval when shorter), at most the interval",
  ),
  healthyThreshold: thresholdSchema.default(1).describe(
    "Consecutive passes that turn a failing check passing; default 1",
  ),
  unhealthyThreshold: thresholdSchema.default(3).describe(
    "Consecutive failures that turn a passing check failing; default 3",
  ),
}).superRefine((check, ctx) => {
  const kinds = CHECK_KINDS.filter((kind) => check[kind] !== undefined);
  if (kinds.length === 0) {
    fieldIssue(ctx, [], "Missing check kind: set one of http, tcp, grpc or exec");
  }
  for (const extra of kinds.slice(1)) {
    fieldIssue(
      ctx,
      [extra],
      `Use exactly one of http, tcp, grpc or exec: found "${kinds[0]}" and "${extra}"`,
    );
  }
  if (check.grpcService !== undefined && check.grpc === undefined) {
    fieldIssue(ctx, ["grpcService"], 'Only valid with "grpc"');
  }
  if (check.timeout !== undefined && check.timeout > check.interval) {
    fieldIssue(ctx, ["timeout"], "Must not be longer than the interval, or runs would overlap");
  }
}).transform((check): CheckConfig => ({
  target: checkTarget(check),
  intervalMs: check.interval,
  timeoutMs: check.timeout ?? Math.min(DEFAULT_CHECK_TIMEOUT_MS, check.interval),
  healthyThreshold: check.healthyThreshold,
  unhealthyThreshold: check.unhealthyThreshold,
}));

function checkTarget(check: {
  http?: string | undefined;
  tcp?: { hostname: string; port: number } | undefined;
  grpc?: { hostname: string; port: number } | undefined;
  grpcService?: string | undefined;
  exec?: string[] | undefined;
}): CheckTarget {
  if (check.http !== undefined) return { kind: "http", url: check.http };
  if (check.tcp !== undefined) return { kind: "tcp", ...check.tcp };
  if (check.grpc !== undefined) {
    return { kind: "grpc", ...check.grpc, service: check.grpcService ?? "" };
  }
  const [program, ...args] = check.exec!;
  return { kind: "exec", command: [program!, ...args] };
}

const serviceSchema = z.strictObject({
  name: labelName.describe("Service name (DNS-1123 label) the instance registers under"),
  id: labelName.optional().describe(
    "Instance id, unique on this node (DNS-1123 label); default: the service name",
  ),
  namespace: labelName.default("default").describe("Namespace of the service; default default"),
  address: ipAddress.optional().describe(
    "IP literal the instance listens on; default node.address",
  ),
  port: portNumber.describe("Port the instance listens on"),
  inboundPort: portNumber.optional().describe(
    "Port of the local Envoy's mTLS listener for this instance, on node.address: other nodes' sidecars connect there and Envoy forwards to 127.0.0.1:port; unique on the node, distinct from every service port and upstream localPort. Without it the instance gets no sidecar listener and is reached directly (e.g. by proxyless gRPC clients); sidecars elsewhere cannot reach it",
  ),
  protocol: z.enum(PROTOCOLS).default("http").describe(
    "Application protocol: http, http2, grpc or tcp; default http",
  ),
  labels: labelsSchema.default({}).describe("Labels of the instance, e.g. version: v1"),
  check: checkSchema.optional().describe(
    "Health check; without one the instance is always healthy",
  ),
}).transform(({ id, ...service }) => ({ ...service, id: id ?? service.name }));

const UPSTREAM = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const upstreamSchema = z.strictObject({
  service: z.string().regex(UPSTREAM, 'Must be "name.namespace", both DNS-1123 labels').describe(
    'Service the local Envoy exposes, as "name.namespace"',
  ),
  localPort: portNumber.describe("Loopback port the application connects to for that service"),
  port: portNumber.optional().describe(
    "The service port to reach when the service has several; default: its lowest port",
  ),
});

/** The schema of the agent configuration file; parse it with {@link parseAgentConfig}. */
export const agentConfigSchema = z.strictObject({
  server: z.url({ protocol: /^https$/, error: "Must be an https:// URL" }).optional().describe(
    "Server URL, as --server; a flag or IRONMESH_SERVER wins",
  ),
  joinTokenFile: z.string().min(1).optional().describe(
    "File holding the join token, as --join-token-file; a flag or variable wins",
  ),
  dataDir: z.string().min(1).optional().describe(
    "Data directory, as --data-dir; default ./ironmesh-agent-data",
  ),
  logLevel: z.enum(LEVELS).optional().describe("Log level, as --log-level; default info"),
  keepInstancesOnExit: z.boolean().optional().describe(
    "Leave the node registered on SIGTERM, as --keep-instances-on-exit; default false",
  ),
  localXdsAddr: z.string().min(1).optional().describe(
    "Loopback address of the local xDS endpoint, as --local-xds-addr; default 127.0.0.1:15010",
  ),
  xdsServer: z.string().min(1).optional().describe(
    "The server's gRPC (xDS) address, as --xds-server; default: the server's host, port 15012",
  ),
  envoyBinary: z.string().min(1).optional().describe(
    "Envoy executable to start and supervise, as --envoy-binary; default: envoy on PATH",
  ),
  dnsAddr: z.string().min(1).optional().describe(
    "Address of the agent's DNS server (UDP and TCP), as --dns-addr; default 127.0.0.1:8600",
  ),
  metricsAddr: z.string().min(1).optional().describe(
    "Loopback address of the agent's metrics endpoint, as --metrics-addr; default 127.0.0.1:15020",
  ),
  dns: z.strictObject({
    domain: dnsDomain.default(DEFAULT_DNS_DOMAIN).describe(
      "The domain the agent answers for: <service>.<namespace>.svc.<domain>; default ironmesh",
    ),
    ttl: durationSchema({ min: 0, max: 3_600_000 }).default(DEFAULT_DNS_TTL_MS).describe(
      "TTL of every answer, also of negative ones; default 5s, at most 1h",
    ),
    forward: z.boolean().default(false).describe(
      "Forward names outside the domain to the resolvers of /etc/resolv.conf (else REFUSED); default false",
    ),
  }).prefault({}).transform((d) => ({ domain: d.domain, ttlMs: d.ttl, forward: d.forward }))
    .describe("The agent's DNS server"),
  proxyless: z.strictObject({
    keyGroup: z.union([
      z.number().int().min(0).max(4_294_967_294),
      z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}\$?$/, "Must be a group name or a numeric gid"),
    ]).optional().describe(
      "Group (name or gid) that may read the workload key of grpc-bootstrap.json (mode 0640); default: the agent's user only (0600)",
    ),
    refreshInterval: durationSchema({ min: 100, max: 3_600_000 }).default(DEFAULT_GRPC_REFRESH_MS)
      .describe(
        "How often proxyless gRPC apps re-read the certificate files (file_watcher refresh_interval); default 5s",
      ),
  }).prefault({}).transform((p) => ({
    ...(p.keyGroup !== undefined ? { keyGroup: p.keyGroup } : {}),
    refreshIntervalMs: p.refreshInterval,
  })).describe(
    "The gRPC xDS bootstrap the agent writes for proxyless gRPC apps (grpc-bootstrap.json)",
  ),
  node: z.strictObject({
    name: nodeName.optional().describe(
      "Node name (DNS-1123 subdomain, at most 64 characters); default: the host name, lower-cased",
    ),
    address: ipAddress.optional().describe(
      "IP literal other nodes reach this one at; default: the first non-loopback IPv4 address, else 127.0.0.1",
    ),
    labels: labelsSchema.default({}).describe("Labels of the node, e.g. region and zone"),
  }).prefault({}).describe("The host this agent runs on"),
  heartbeat: z.strictObject({
    interval: durationSchema(HEARTBEAT_INTERVAL_BOUNDS).default(DEFAULT_INTERVAL_MS).describe(
      `Time between heartbeats; the server marks the node stale after 3; default 5s, between ${
        formatDuration(HEARTBEAT_INTERVAL_BOUNDS.min)
      } and ${formatDuration(HEARTBEAT_INTERVAL_BOUNDS.max)}`,
    ),
  }).prefault({}).transform((h) => ({ intervalMs: h.interval })).describe(
    "How often the agent tells the server it is alive",
  ),
  services: z.array(serviceSchema).max(256).default([]).superRefine((services, ctx) => {
    const seen = new Set<string>();
    services.forEach((service, i) => {
      if (seen.has(service.id)) {
        fieldIssue(
          ctx,
          [i, service.id === service.name ? "name" : "id"],
          `Duplicate instance id "${service.id}": give each service entry a unique id`,
        );
      }
      seen.add(service.id);
    });
  }).describe("Service instances this node registers"),
  upstreams: z.array(upstreamSchema).max(256).default([]).superRefine((upstreams, ctx) => {
    const seen = new Set<number>();
    upstreams.forEach((upstream, i) => {
      if (seen.has(upstream.localPort)) {
        fieldIssue(
          ctx,
          [i, "localPort"],
          `Duplicate local port ${upstream.localPort}: each upstream needs its own`,
        );
      }
      seen.add(upstream.localPort);
    });
  }).describe("Services the local Envoy exposes to applications on loopback ports"),
}).superRefine((config, ctx) => {
  // Envoy binds every inbound port (on the node's address) and every upstream's local port (on
  // loopback) on this host: none may be taken twice, nor by an application.
  const appPorts = new Set(config.services.map((s) => s.port));
  const localPorts = new Set(config.upstreams.map((u) => u.localPort));
  const inboundPorts = new Set<number>();
  config.services.forEach((service, i) => {
    const port = service.inboundPort;
    if (port === undefined) return;
    const clash = inboundPorts.has(port)
      ? "the inboundPort of another service"
      : appPorts.has(port)
      ? "a service's port"
      : localPorts.has(port)
      ? "an upstream's localPort"
      : undefined;
    if (clash) {
      fieldIssue(
        ctx,
        ["services", i, "inboundPort"],
        `Port ${port} is already ${clash} on this node: give each inboundPort its own port`,
      );
    }
    inboundPorts.add(port);
  });
  // A proxyless gRPC server's port has one server Listener, with one service's policies: the
  // server refuses a registration with two gRPC services on one port, so say so here first.
  const grpcPorts = new Map<number, string>();
  config.services.forEach((service, i) => {
    if (service.protocol !== "grpc") return;
    const name = `${service.name}.${service.namespace}`;
    const other = grpcPorts.get(service.port);
    if (other !== undefined && other !== name) {
      ctx.addIssue({
        code: "custom",
        path: ["services", i, "port"],
        message:
          `Port ${service.port} is already the gRPC port of service "${other}" on this node: one gRPC service per port`,
      });
    }
    if (other === undefined) grpcPorts.set(service.port, name);
  });
  // Envoy binds each upstream on 127.0.0.1:<localPort>; a port in use fails the bind and
  // Envoy refuses the listener update that holds it.
  const xdsPort = Number(/:(\d+)$/.exec(config.localXdsAddr ?? DEFAULT_LOCAL_XDS_ADDR)?.[1]);
  config.upstreams.forEach((upstream, i) => {
    const port = upstream.localPort;
    const clash = appPorts.has(port)
      ? "a service's port"
      : port === ENVOY_ADMIN.port
      ? "Envoy's admin port"
      : port === xdsPort
      ? "the agent's local xDS port"
      : undefined;
    if (clash) {
      fieldIssue(
        ctx,
        ["upstreams", i, "localPort"],
        `Port ${port} is already ${clash} on this node: give each upstream's localPort its own port`,
      );
    }
  });
});

/** A parsed agent configuration, defaults applied; node name and address may still be unset. */
export type AgentConfig = z.output<typeof agentConfigSchema>;
/** One service entry of an {@link AgentConfig}, its `id` defaulted to its name. */
export type ServiceConfig = AgentConfig["services"][number];
/** One upstream entry of an {@link AgentConfig}. */
export type UpstreamConfig = AgentConfig["upstreams"][number];

/**
 * Parses the text of an agent configuration file. Throws a `ConfigFileError`
 * naming the file, line and field of every problem.
 */
export function parseAgentConfig(text: string, file: string): AgentConfig {
  return parseConfigText(text, file, agentConfigSchema);
}
