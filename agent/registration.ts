/**
 * What the agent tells the server, built purely from the configuration, the
 * host's facts and the latest check results: the node's name and address,
 * the registration (the node's whole state) and the heartbeat.
 */
import type { z } from "zod";
import type { AgentConfig, ServiceConfig, UpstreamConfig } from "../core/agent_config.ts";
import { formatDuration } from "../core/duration.ts";
import { InvalidError } from "../core/errors.ts";
import type { Labels } from "../core/labels.ts";
import type {
  CheckStatus,
  heartbeatSchema,
  NodeCondition,
  nodeRegistrationSchema,
} from "../core/model.ts";
import { isNodeName, NODE_NAME_RULE } from "../core/names.ts";
import { VERSION } from "../core/version.ts";

/** The body of `PUT /v1/nodes/{name}/registration` as sent on the wire. */
export type RegistrationBody = z.input<typeof nodeRegistrationSchema>;
/** The body of `POST /v1/nodes/{name}/heartbeat` as sent on the wire. */
export type HeartbeatBody = z.input<typeof heartbeatSchema>;

/** Facts about the host that name and address the node when the configuration does not. */
export interface HostInfo {
  /** The host name as the OS reports it. */
  hostname: string;
  /** Addresses of the host's network interfaces, in the OS's order. */
  interfaces: readonly { family: string; address: string }[];
}

/** The node as it registers: configured values, or defaults taken from the host. */
export interface ResolvedNode {
  name: string;
  hostname: string;
  address: string;
  labels: Labels;
}

/** The latest result of one instance's check, as reported to the server. */
export interface CheckReport {
  status: CheckStatus;
  output: string;
}

/**
 * The address other nodes reach this one at: the first IPv4 address that is
 * neither loopback nor link-local (those are not reachable from elsewhere),
 * else `127.0.0.1` so a single-host setup still works.
 */
export function defaultAddress(interfaces: HostInfo["interfaces"]): string {
  const found = interfaces.find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.") && !i.address.startsWith("169.254.")
  );
  return found?.address ?? "127.0.0.1";
}

/** Fills the node's name and address from the host where the configuration leaves them out. */
export function resolveNode(node: AgentConfig["node"], host: HostInfo): ResolvedNode {
  const name = node.name ?? host.hostname.toLowerCase();
  if (!isNodeName(name)) {
    throw new InvalidError(
      `Cannot use host name "${host.hostname}" as node name: it is not ${NODE_NAME_RULE}; set node.name in the agent configuration`,
      [{ pointer: "/node/name", message: `Must be ${NODE_NAME_RULE}` }],
    );
  }
  return {
    name,
    hostname: host.hostname,
    address: node.address ?? defaultAddress(host.interfaces),
    labels: node.labels,
  };
}

const NO_CHECK: CheckReport = { status: "none", output: "" };

/**
 * The node's whole state for the server: its instances (with their sidecar
 * inbound ports), the upstreams its sidecar exposes and its conditions (what
 * is wrong on it, e.g. no Envoy where one is needed). An instance without a check reports
 * `none`; one whose check has not run yet cannot occur, because the agent runs
 * every check once before registering.
 */
export function registrationBody(
  node: ResolvedNode,
  config: AgentConfig,
  reports: ReadonlyMap<string, CheckReport>,
  conditions: NodeCondition[] = [],
): RegistrationBody {
  return {
    hostname: node.hostname,
    addresses: [node.address],
    labels: node.labels,
    agentVersion: VERSION,
    heartbeatInterval: formatDuration(config.heartbeat.intervalMs),
    instances: config.services.map((service: ServiceConfig) => {
      const report = reports.get(service.id) ?? NO_CHECK;
      return {
        id: service.id,
        namespace: service.namespace,
        service: service.name,
        address: service.address ?? node.address,
        port: service.port,
        ...(service.inboundPort !== undefined ? { inboundPort: service.inboundPort } : {}),
        protocol: service.protocol,
        labels: service.labels,
        check: report.status,
        output: report.output,
      };
    }),
    upstreams: config.upstreams.map((upstream: UpstreamConfig) => {
      // The configuration's "name.namespace" has exactly one dot (both parts are DNS-1123 labels).
      const dot = upstream.service.indexOf(".");
      return {
        service: upstream.service.slice(0, dot),
        namespace: upstream.service.slice(dot + 1),
        localPort: upstream.localPort,
        ...(upstream.port !== undefined ? { port: upstream.port } : {}),
      };
    }),
    conditions,
  };
}

/**
 * The heartbeat: every instance's current status, those without a check as
 * `none`, so the server can answer 409 for any instance it has lost and the
 * agent then registers again.
 */
export function heartbeatBody(
  config: AgentConfig,
  reports: ReadonlyMap<string, CheckReport>,
  bundleFingerprint?: string,
): HeartbeatBody {
  return {
    checks: config.services.map((service) => {
      const report = reports.get(service.id) ?? NO_CHECK;
      return { id: service.id, status: report.status, output: report.output };
    }),
    // Which trust bundle this host holds: a root rotation waits for every live node to hold the new one.
    ...(bundleFingerprint ? { bundleFingerprint } : {}),
  };
}
