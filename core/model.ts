import { isIP } from "node:net";
import { z } from "zod";
import { durationSchema, formatDuration } from "./duration.ts";
import { labelsSchema } from "./labels.ts";
import { labelName, nodeName, subdomainName } from "./names.ts";
import { ENVOY_ADMIN } from "./envoy_bootstrap.ts";
import { fieldIssue } from "./validate.ts";

/**
 * The heartbeat intervals an agent may declare, in milliseconds. The TLS
 * port's idle timeout is derived from `max` (`api/tls_listener.ts`), so the
 * server never closes a connection that is merely waiting for the next beat.
 */
export const HEARTBEAT_INTERVAL_BOUNDS = { min: 100, max: 600_000 } as const;

/** Application protocols a service port may speak; they decide how Envoy proxies it. */
export const PROTOCOLS = ["http", "http2", "grpc", "tcp"] as const;
/** One of {@link PROTOCOLS}. */
export type Protocol = typeof PROTOCOLS[number];

/** Health of an instance as traffic sees it: only `healthy` instances receive traffic. */
export const healthSchema = z.enum(["healthy", "unhealthy", "draining"]).describe(
  "Health of an instance as traffic sees it: only `healthy` instances receive traffic",
);
/** Health of an instance as traffic sees it: only `healthy` instances receive traffic. */
export type Health = z.infer<typeof healthSchema>;
/** Latest result of an instance's health check; `none` means it has no check. */
export const checkStatusSchema = z.enum(["passing", "failing", "none"]).describe(
  "Latest result of an instance's health check; `none` means it has no check",
);
/** Latest result of an instance's health check; `none` means it has no check. */
export type CheckStatus = z.infer<typeof checkStatusSchema>;
/** Whether a node's agent is heartbeating within its TTL. */
export const nodeStatusSchema = z.enum(["alive", "stale"]).describe(
  "Whether a node's agent is heartbeating within its TTL",
);
/** Whether a node's agent is heartbeating within its TTL. */
export type NodeStatus = z.infer<typeof nodeStatusSchema>;
/** Roles of API callers, from most to least powerful; `agent` acts only on its own node. */
export const ROLES = ["admin", "operator", "viewer", "agent"] as const;
/** One of {@link ROLES}. */
export type Role = typeof ROLES[number];

/** An IP literal (v4 or v6); xDS endpoints need literals, never host names. */
export const ipAddress = z.string().refine((s) => isIP(s) !== 0, {
  message: "Must be an IPv4 or IPv6 address literal",
}).describe("An IPv4 or IPv6 address literal");

/** A TCP port number. */
export const portNumber = z.number().int("Must be an integer").min(1, "Must be between 1 and 65535")
  .max(65535, "Must be between 1 and 65535");

/** An ISO 8601 timestamp (UTC) as the server writes it. */
const timestamp = z.iso.datetime();

/** Labels as the server returns them (the request side validates them with {@link labelsSchema}). */
const labelsOut = z.record(z.string(), z.string()).describe("Labels: string keys to string values");

/** Revision of the object's last change; its `ETag` is this number in quotes. */
const revision = z.number().int().min(0).describe(
  "Revision of the object's last change; its `ETag` is this number in quotes",
);

/** One port of a service. */
export const servicePortSchema = z.object({
  port: portNumber,
  protocol: z.enum(PROTOCOLS),
}).describe("One port of a service");
/** One port of a service. */
export type ServicePort = z.infer<typeof servicePortSchema>;

/** A service: a name in a namespace that instances register under. */
export const serviceSchema = z.object({
  namespace: z.string(),
  name: z.string(),
  ports: z.array(servicePortSchema),
  labels: labelsOut,
  /** `registry` when agents created it (it goes away with its last instance); `api` when an operator wrote it. */
  managedBy: z.enum(["registry", "api"]).describe(
    "`registry` when agents created it (it goes away with its last instance); `api` when an operator wrote it",
  ),
  createdAt: timestamp,
  revision,
}).describe("A service: a name in a namespace that instances register under");
/** A service: a name in a namespace that instances register under. */
export type Service = z.infer<typeof serviceSchema>;

/** One service a node's sidecar exposes to the node's applications on a loopback port. */
export const nodeUpstreamSchema = z.object({
  service: z.string(),
  namespace: z.string(),
  localPort: portNumber.describe("Loopback port the node's applications connect to"),
  port: portNumber.optional().describe(
    "The service port to reach; absent: the service's lowest port",
  ),
}).describe("One service a node's sidecar exposes to the node's applications on a loopback port");
/** One service a node's sidecar exposes to the node's applications on a loopback port. */
export type NodeUpstream = z.infer<typeof nodeUpstreamSchema>;

/** The kinds of {@link NodeCondition}. */
export const NODE_CONDITION_TYPES = ["SidecarNotRunning"] as const;

/**
 * Something wrong on a node that its agent reports, present while it lasts:
 * `SidecarNotRunning` when the node declares sidecar ports (an instance's
 * `inboundPort`, an upstream) but no Envoy runs (reason `EnvoyNotFound` or
 * `EnvoyExited`).
 */
export const nodeConditionSchema = z.strictObject({
  type: z.enum(NODE_CONDITION_TYPES),
  reason: z.string().regex(
    /^[A-Za-z][A-Za-z0-9]{0,63}$/,
    "Must be a CamelCase word of 1 to 64 letters and digits",
  )
    .describe("Why, as one CamelCase word, e.g. `EnvoyNotFound`"),
  message: z.string().max(1024).describe("What the agent says about it, for operators"),
}).describe("Something wrong on a node that its agent reports, present while it lasts");
/** Parsed {@link nodeConditionSchema}. */
export type NodeCondition = z.infer<typeof nodeConditionSchema>;

/** A host running an agent. */
export const meshNodeSchema = z.object({
  name: z.string(),
  hostname: z.string(),
  addresses: z.array(z.string()),
  labels: labelsOut,
  agentVersion: z.string(),
  heartbeatIntervalMs: z.number().int(),
  /** Time without a heartbeat after which the node turns `stale` (3 intervals). */
  ttlMs: z.number().int().describe(
    "Time without a heartbeat after which the node turns `stale` (3 intervals)",
  ),
  status: nodeStatusSchema,
  draining: z.boolean(),
  /** Id of the API token that registered the node; only that token's agent may act on it. */
  owner: z.string().describe(
    "Id of the API token that registered the node; only that token's agent may act on it",
  ),
  /** What the node's sidecar exposes to its applications; empty without a sidecar. */
  upstreams: z.array(nodeUpstreamSchema).describe(
    "What the node's sidecar exposes to its applications; empty without a sidecar",
  ),
  conditions: z.array(nodeConditionSchema).describe(
    "What is wrong on the node, as its agent last registered it; empty when all is well",
  ),
  registeredAt: timestamp,
  lastHeartbeat: timestamp,
  revision,
}).describe("A host running an agent");
/** A host running an agent. */
export type MeshNode = z.infer<typeof meshNodeSchema>;

/** The latest health-check result the agent reported for an instance. */
export const checkStateSchema = z.object({
  status: checkStatusSchema,
  output: z.string(),
  updatedAt: timestamp,
}).describe("The latest health-check result the agent reported for an instance");
/** The latest health-check result the agent reported for an instance. */
export type CheckState = z.infer<typeof checkStateSchema>;

/** One endpoint of a service on a node. Its id is `<local-id>@<node>`. */
export const instanceSchema = z.object({
  id: z.string(),
  node: z.string(),
  namespace: z.string(),
  service: z.string(),
  address: z.string(),
  port: portNumber,
  /** Port of the node's sidecar listener (mTLS) for this instance; `null` when it has none. */
  inboundPort: portNumber.nullable().describe(
    "Port of the node's sidecar listener (mTLS) for this instance; `null` when peers reach it directly",
  ),
  protocol: z.enum(PROTOCOLS),
  labels: labelsOut,
  check: checkStateSchema,
  draining: z.boolean(),
  health: healthSchema,
  revision,
}).describe("One endpoint of a service on a node. Its id is `<local-id>@<node>`");
/** One endpoint of a service on a node. Its id is `<local-id>@<node>`. */
export type Instance = z.infer<typeof instanceSchema>;

/** Joins an instance's local id (unique on its node) and its node into the global id. */
export function instanceId(localId: string, node: string): string {
  return `${localId}@${node}`;
}

/** The body of `PUT /v1/services/{namespace}/{name}`. */
export const servicePutSchema = z.strictObject({
  ports: z.array(z.strictObject({ port: portNumber, protocol: z.enum(PROTOCOLS) })).max(64)
    .default([]).describe("Ports registered instances use are kept even when left out"),
  labels: labelsSchema.default({}),
}).describe("The body of `PUT /v1/services/{namespace}/{name}`");
/** Parsed {@link servicePutSchema}. */
export type ServicePut = z.infer<typeof servicePutSchema>;

/** One instance as an agent registers it. */
export const instanceRegistrationSchema = z.strictObject({
  id: labelName.describe("Unique on the node; the instance id is `<id>@<node>`"),
  namespace: labelName.default("default"),
  service: labelName,
  address: ipAddress.optional().describe("An IP literal; default: the node's first address"),
  port: portNumber,
  inboundPort: portNumber.optional().describe(
    "Port of the node's sidecar listener (mTLS) that peers reach this instance on; absent: the instance has no sidecar listener and is reached directly",
  ),
  protocol: z.enum(PROTOCOLS).default("http"),
  labels: labelsSchema.default({}),
  check: checkStatusSchema.default("none"),
  output: z.string().max(4096).default("").describe("The check's latest output"),
}).describe("One instance as an agent registers it");

/** One upstream of a node as an agent registers it. */
export const upstreamRegistrationSchema = z.strictObject({
  service: labelName,
  namespace: labelName.default("default"),
  localPort: portNumber.describe("Loopback port the node's applications connect to"),
  port: portNumber.optional().describe(
    "The service port to reach; default: the service's lowest port",
  ),
}).describe("One service the node's sidecar exposes to the node's applications");

/** The body of `PUT /v1/nodes/{name}/registration`: the node's whole state, idempotent. */
export const nodeRegistrationSchema = z.strictObject({
  hostname: z.string().min(1).max(253),
  addresses: z.array(ipAddress).min(1, "At least one address is required").max(16),
  labels: labelsSchema.default({}),
  agentVersion: z.string().min(1).max(64),
  heartbeatInterval: durationSchema(HEARTBEAT_INTERVAL_BOUNDS).describe(
    `How often the agent heartbeats, as a duration such as \`5s\` (${
      formatDuration(HEARTBEAT_INTERVAL_BOUNDS.min)
    } to ${formatDuration(HEARTBEAT_INTERVAL_BOUNDS.max)}); the TTL is 3 intervals`,
  ),
  instances: z.array(instanceRegistrationSchema).max(256).superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((inst, i) => {
      if (seen.has(inst.id)) {
        fieldIssue(
          ctx,
          [i, "id"],
          `Duplicate instance id "${inst.id}": give each service entry a unique id`,
        );
      }
      seen.add(inst.id);
    });
  }).describe("Every instance on the node; the ones left out are removed"),
  upstreams: z.array(upstreamRegistrationSchema).max(256).default([]).describe(
    "Services the node's sidecar exposes to its applications on loopback ports",
  ),
  conditions: z.array(nodeConditionSchema).max(16).default([]).describe(
    "What is wrong on the node now, e.g. sidecar ports declared and no Envoy running",
  ),
}).superRefine((reg, ctx) => {
  // The sidecar binds every inbound port and every upstream's local port on this host.
  const appPorts = new Set(reg.instances.map((i) => i.port));
  const localPorts = new Map<number, number>();
  reg.upstreams.forEach((u, i) => {
    // Envoy binds the upstream on 127.0.0.1:<localPort>; a port in use fails the bind and
    // Envoy refuses the whole listener update. The agent also checks its own local xDS port,
    // which the server does not know.
    const clash = localPorts.has(u.localPort)
      ? "another upstream's local port"
      : appPorts.has(u.localPort)
      ? "an instance's port"
      : u.localPort === ENVOY_ADMIN.port
      ? "Envoy's admin port"
      : undefined;
    if (clash) {
      fieldIssue(
        ctx,
        ["upstreams", i, "localPort"],
        `Local port ${u.localPort} is already ${clash} on this node: each upstream needs its own`,
      );
    }
    if (!localPorts.has(u.localPort)) localPorts.set(u.localPort, i);
  });
  const inboundPorts = new Set<number>();
  reg.instances.forEach((inst, i) => {
    const port = inst.inboundPort;
    if (port === undefined) return;
    const path = ["instances", i, "inboundPort"];
    const clash = inboundPorts.has(port)
      ? "another instance's inbound port"
      : appPorts.has(port)
      ? "an instance's port"
      : localPorts.has(port)
      ? "an upstream's local port"
      : undefined;
    if (clash) {
      fieldIssue(ctx, path, `Inbound port ${port} is already ${clash} on this node`);
    }
    inboundPorts.add(port);
  });
  // A proxyless gRPC server gets one server Listener per port of its host, with the RBAC of
  // one service (xds/generate/proxyless_security.ts): two services there could not both have theirs.
  const grpcPorts = new Map<number, string>();
  reg.instances.forEach((inst, i) => {
    if (inst.protocol !== "grpc") return;
    const service = `${inst.service}.${inst.namespace}`;
    const other = grpcPorts.get(inst.port);
    if (other !== undefined && other !== service) {
      ctx.addIssue({
        code: "custom",
        path: ["instances", i, "port"],
        message:
          `Port ${inst.port} is already the gRPC port of service "${other}" on this node: one gRPC service per port`,
      });
    }
    if (other === undefined) grpcPorts.set(inst.port, service);
  });
}).describe("The body of `PUT /v1/nodes/{name}/registration`: the node's whole state");
/** Parsed {@link nodeRegistrationSchema}. */
export type NodeRegistration = z.infer<typeof nodeRegistrationSchema>;

/** The body of `POST /v1/nodes/{name}/heartbeat`: every check's latest status. */
export const heartbeatSchema = z.strictObject({
  checks: z.array(z.strictObject({
    id: labelName.describe("The instance's id on the node, as registered"),
    status: checkStatusSchema,
    output: z.string().max(4096).default(""),
  })).max(256).default([]),
  bundleFingerprint: z.string().max(128).optional().describe(
    "Fingerprint of the trust bundle the agent holds; a root rotation waits until every live node holds the new one",
  ),
}).describe("The body of `POST /v1/nodes/{name}/heartbeat`: every check's latest status");
/** Parsed {@link heartbeatSchema}. */
export type Heartbeat = z.infer<typeof heartbeatSchema>;

/** The body of `PATCH /v1/nodes/{name}` and `PATCH /v1/instances/{id}`. */
export const drainPatchSchema = z.strictObject({
  draining: z.boolean().describe("`true` takes it out of traffic; `false` puts it back"),
}).describe("The body of `PATCH /v1/nodes/{name}` and `PATCH /v1/instances/{id}`");

const apiTokenCreateSchema = z.strictObject({
  kind: z.literal("api"),
  role: z.enum(ROLES),
  node: nodeName.optional().describe("Binds an `agent` token to this node only"),
  description: z.string().max(256).default(""),
  ttl: durationSchema({ min: 1_000, max: 10 * 365 * 86_400_000 }).optional().describe(
    "Lifetime as a duration such as `720h` (1s to 87600h); without it the token never expires",
  ),
}).refine((t) => t.node === undefined || t.role === "agent", {
  path: ["node"],
  message: "Only agent tokens are bound to a node",
});

/** Longest a join token may live: it is a bearer credential for a whole identity. */
export const MAX_JOIN_TOKEN_TTL_MS = 30 * 86_400_000;

const joinTokenCreateSchema = z.strictObject({
  kind: z.literal("join"),
  namespace: labelName.default("default").describe("Namespace of the identity it grants"),
  serviceAccount: labelName.describe(
    "Service account of the identity: `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceAccount>`",
  ),
  node: nodeName.optional().describe("The only node name it may enrol"),
  uses: z.number().int("Must be an integer").min(1, "Must be between 1 and 10000").max(
    10_000,
    "Must be between 1 and 10000",
  ).default(1).describe("How many enrolments it allows"),
  description: z.string().max(256).default(""),
  ttl: durationSchema({ min: 1_000, max: MAX_JOIN_TOKEN_TTL_MS }).default(3_600_000).describe(
    "Lifetime as a duration such as `24h` (1s to 720h); default `1h`",
  ),
});

/**
 * The body of `POST /v1/tokens`: an API token (`kind: "api"`, the default)
 * for automation, or a join token (`kind: "join"`) that enrols hosts.
 */
export const tokenCreateSchema = z.preprocess(
  (value) =>
    value !== null && typeof value === "object" && !Array.isArray(value) && !("kind" in value)
      ? { ...value, kind: "api" }
      : value,
  z.discriminatedUnion("kind", [apiTokenCreateSchema, joinTokenCreateSchema]),
);
/** Parsed {@link tokenCreateSchema}. */
export type TokenCreate = z.infer<typeof tokenCreateSchema>;
/** A parsed API-token request. */
export type ApiTokenCreate = z.infer<typeof apiTokenCreateSchema>;
/** A parsed join-token request. */
export type JoinTokenCreate = z.infer<typeof joinTokenCreateSchema>;

/** An API token as stored and listed; the secret itself is shown once, at creation. */
export const apiTokenSchema = z.object({
  id: z.string(),
  kind: z.literal("api"),
  role: z.enum(ROLES),
  /** For `agent` tokens: the only node this token may register, when set. */
  node: z.string().nullable().describe(
    "For `agent` tokens: the only node this token may register, when set",
  ),
  description: z.string(),
  createdAt: timestamp,
  expiresAt: timestamp.nullable(),
  revokedAt: timestamp.nullable(),
}).describe("An API token as stored and listed; the secret itself is shown once, at creation");
/** An API token as stored and listed; the secret itself is shown once, at creation. */
export type ApiToken = z.infer<typeof apiTokenSchema>;

/**
 * A join token as stored and listed: who a host may become when it enrols
 * with it, and how often it may be used. The signed token itself is shown once.
 */
export const joinTokenSchema = z.object({
  id: z.string(),
  kind: z.literal("join"),
  namespace: z.string(),
  serviceAccount: z.string(),
  /** The only node name it may enrol, when set. */
  node: z.string().nullable().describe("The only node name it may enrol, when set"),
  uses: z.number().int(),
  used: z.number().int(),
  description: z.string(),
  createdAt: timestamp,
  expiresAt: timestamp,
  revokedAt: timestamp.nullable(),
}).describe(
  "A join token as stored and listed: who a host may become when it enrols with it, and how often it may be used. The signed token itself is shown once",
);
/**
 * A join token as stored and listed: who a host may become when it enrols
 * with it, and how often it may be used. The signed token itself is shown once.
 */
export type JoinToken = z.infer<typeof joinTokenSchema>;

/** Any token the server issues. */
export type Token = ApiToken | JoinToken;

/** How a certificate came to be issued. */
export const issuanceKindSchema = z.enum(["enrol", "renew"]).describe(
  "How a certificate came to be issued",
);
/** How a certificate came to be issued. */
export type IssuanceKind = z.infer<typeof issuanceKindSchema>;

/** The record of one issued workload certificate; the deny list is built from these. */
export const certificateRecordSchema = z.object({
  /** Serial number, lower-case hex. */
  serial: z.string().describe("Serial number, lower-case hex"),
  node: z.string(),
  /** SPIFFE ID in the URI SAN. */
  identity: z.string().describe("SPIFFE ID in the URI SAN"),
  /** The join token the node enrolled with; renewals inherit it, so revoking it reaches them. */
  tokenId: z.string().nullable().describe(
    "The join token the node enrolled with; renewals inherit it, so revoking it reaches them",
  ),
  /** SHA-256 fingerprint (hex) of the root the certificate chains to. */
  root: z.string().describe("SHA-256 fingerprint (hex) of the root the certificate chains to"),
  kind: issuanceKindSchema,
  notBefore: timestamp,
  notAfter: timestamp,
  issuedAt: timestamp,
  /** Set when a later certificate for the same node replaced this one. */
  supersededAt: timestamp.nullable().describe(
    "Set when a later certificate for the same node replaced this one",
  ),
  revokedAt: timestamp.nullable(),
  revokeReason: z.string().nullable(),
}).describe("The record of one issued workload certificate; the deny list is built from these");
/** The record of one issued workload certificate; the deny list is built from these. */
export type CertificateRecord = z.infer<typeof certificateRecordSchema>;

export { labelName, subdomainName };

/** The body of `POST /v1/ca/enrol`: a join token, a PKCS#10 CSR (PEM) and the node name. */
export const enrolRequestSchema = z.strictObject({
  token: z.string().min(1).max(8192).describe("The join token"),
  csr: z.string().min(1).max(16_384).describe("A PKCS#10 certificate signing request, PEM"),
  node: nodeName.describe("The node name to enrol as"),
}).describe("The body of `POST /v1/ca/enrol`");

/** The body of `POST /v1/ca/renew`: a new CSR, proven by the current certificate (mTLS). */
export const renewRequestSchema = z.strictObject({
  csr: z.string().min(1).max(16_384).describe("A PKCS#10 certificate signing request, PEM"),
}).describe("The body of `POST /v1/ca/renew`");
