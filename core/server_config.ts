import { z } from "zod";
import { isLoopback, parseHostPort } from "./address.ts";
import type { ConnectionLimits } from "./connection_limits.ts";
import { durationSchema, formatDuration } from "./duration.ts";
import { LEVELS } from "./log.ts";
import { HEARTBEAT_INTERVAL_BOUNDS } from "./model.ts";
import { subdomainName } from "./names.ts";

/** Lifetime of a workload certificate when the request names none: 24 hours (docs/identity.md). */
export const DEFAULT_LEAF_TTL_MS = 86_400_000;
/** Longest lifetime a workload certificate may be given by default: 7 days. */
export const DEFAULT_MAX_LEAF_TTL_MS = 7 * 86_400_000;

/**
 * How long an HTTP port keeps an idle keep-alive connection open: the longest
 * heartbeat interval an agent may declare, plus a minute. Node's default (5 s)
 * equals the agent's default interval, so the server's close crossed the
 * agent's next heartbeat on the wire (1.8% of heartbeats failed with 5,000
 * agents). Above every allowed interval, an agent's connection is closed by
 * the agent (its client's own idle limit) or by a restart, never between two
 * beats. Idle connections cost memory only (see docs/benchmarks.md).
 */
export const DEFAULT_IDLE_TIMEOUT_MS = HEARTBEAT_INTERVAL_BOUNDS.max + 60_000;
/**
 * How long a new HTTP connection has to finish its TLS handshake and send a
 * request's headers: Go's servers are commonly given 5–10 s (`ReadHeaderTimeout`);
 * an agent or a script sends its request at once.
 */
export const DEFAULT_HEADER_TIMEOUT_MS = 10_000;
/** Connections each port holds at once; twice the 5,000 agents docs/benchmarks.md measured. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** The limits of every port of a server started without limit flags. */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  headerTimeoutMs: DEFAULT_HEADER_TIMEOUT_MS,
  idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
  maxConnections: DEFAULT_MAX_CONNECTIONS,
};

const list = z.union([
  z.array(z.string().min(1)),
  z.string().transform((text) => text.split(",").map((s) => s.trim()).filter(Boolean)),
]);

const address = z.string().superRefine((text, ctx) => {
  const parsed = parseHostPort(text);
  if (typeof parsed === "string") ctx.addIssue({ code: "custom", message: parsed });
});

/**
 * The server's settings. Each has a flag and an `IRONMESH_*` variable; a
 * `--config` file (YAML) may hold any of them. Precedence: flag, then
 * environment, then file, then the default below.
 */
export const serverConfigSchema = z.strictObject({
  /** Where the database, admin token and `server.json` live. Default `./ironmesh-data`. */
  dataDir: z.string().min(1).default("./ironmesh-data"),
  /** REST API address; port 0 picks a free port. Default `127.0.0.1:15080`. */
  httpAddr: address.default("127.0.0.1:15080"),
  /** gRPC address: xDS and gRPC health over mTLS (client certificates required). Default `0.0.0.0:15012`. */
  grpcAddr: address.default("0.0.0.0:15012"),
  /** TLS address for agents (mTLS) and remote automation; port 0 picks a free port. Default `0.0.0.0:15443`. */
  httpsAddr: address.default("0.0.0.0:15443"),
  /** Serve plain HTTP on a non-loopback `httpAddr`; off by default, since tokens would cross the network in clear. */
  allowRemotePlaintext: z.union([
    z.boolean(),
    z.enum(["true", "false"]).transform((v) => v === "true"),
  ])
    .default(false),
  /** Extra DNS names and IPs for the server certificate (comma-separated); localhost, 127.0.0.1, ::1 and the host name are always in. */
  tlsSan: list.default([]),
  /** URLs agents enrol with, written into join tokens (comma-separated). Default: the TLS address as bound. */
  advertise: list.default([]),
  /** Lifetime of workload certificates. Default `24h`. */
  leafTtl: durationSchema({ min: 1_000, max: 30 * 86_400_000 }).default(DEFAULT_LEAF_TTL_MS),
  /** Longest lifetime a workload certificate may be given. Default `168h` (7 days). */
  maxLeafTtl: durationSchema({ min: 1_000, max: 365 * 86_400_000 }).default(
    DEFAULT_MAX_LEAF_TTL_MS,
  ),
  /** Certificate renewals granted per second across the fleet (bursts of twice that). Default 50. */
  renewRate: z.coerce.number().positive().max(100_000).default(50),
  /** Your own signing CA certificate (PEM), instead of the generated one; with `caKey` and `caChain`. */
  caCert: z.string().min(1).optional(),
  /** The private key (PEM) of `caCert`. */
  caKey: z.string().min(1).optional(),
  /** The chain from `caCert` up to and including your root (PEM). */
  caChain: z.string().min(1).optional(),
  /** File holding the passphrase that encrypts CA keys at rest (or set IRONMESH_CA_KEY_PASSPHRASE). */
  caKeyPassphraseFile: z.string().min(1).optional(),
  /** SPIFFE trust domain of the mesh. Default `ironmesh.local`. */
  trustDomain: subdomainName.default("ironmesh.local"),
  /** Storage URL: `sqlite:PATH` (default `sqlite:DATA_DIR/ironmesh.db`). */
  store: z.string().min(1).optional(),
  /** A node silent this long is removed with its instances. Default `72h`. */
  reapAfter: durationSchema({ min: 1_000 }).default(72 * 3_600_000),
  /** Plaintext xDS listener for local tests and tools; loopback addresses only. Default: none. */
  xdsPlaintextAddr: address.optional(),
  /** Push after the registry has been quiet this long. Default `100ms`. */
  pushDebounce: durationSchema({ min: 0, max: 60_000 }).default(100),
  /** But never later than this after the first change. Default `1s`. */
  pushMaxDelay: durationSchema({ min: 1, max: 600_000 }).default(1_000),
  /** Time a new connection (HTTP, TLS or gRPC) has to start talking. Default `10s`. */
  headerTimeout: durationSchema({ min: 100, max: 600_000 }).default(DEFAULT_HEADER_TIMEOUT_MS),
  /** Time a connection (HTTP, TLS or gRPC) may sit idle between requests. Default `11m`. */
  idleTimeout: durationSchema({ min: 1_000, max: 3_600_000 }).default(DEFAULT_IDLE_TIMEOUT_MS),
  /** Connections each port (HTTP, TLS and gRPC) holds at once. Default 10000. */
  maxConnections: z.coerce.number().int("Must be a whole number").min(1).max(1_000_000).default(
    DEFAULT_MAX_CONNECTIONS,
  ),
  /** Log level: debug, info, warn or error. Default `info`. */
  logLevel: z.enum(LEVELS).default("info"),
  /** Log line format: `json`, `text`, or `auto` (text on a terminal, JSON otherwise). Default `auto`. */
  logFormat: z.enum(["auto", "json", "text"]).default("auto"),
}).superRefine((config, ctx) => {
  if (config.leafTtl > config.maxLeafTtl) {
    ctx.addIssue({
      code: "custom",
      path: ["leafTtl"],
      message: `Must not exceed maxLeafTtl (${formatDuration(config.maxLeafTtl)})`,
    });
  }
  const ca = [config.caCert, config.caKey, config.caChain];
  if (ca.some((v) => v !== undefined) && ca.some((v) => v === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: [
        config.caCert === undefined ? "caCert" : config.caKey === undefined ? "caKey" : "caChain",
      ],
      message: "Give --ca-cert, --ca-key and --ca-chain together",
    });
  }
  const plainXds = config.xdsPlaintextAddr ? parseHostPort(config.xdsPlaintextAddr) : undefined;
  if (plainXds && typeof plainXds !== "string" && !isLoopback(plainXds.host)) {
    ctx.addIssue({
      code: "custom",
      path: ["xdsPlaintextAddr"],
      message: "The plaintext xDS listener trusts what proxies claim: it binds to loopback only",
    });
  }
  const http = parseHostPort(config.httpAddr);
  if (typeof http !== "string" && !isLoopback(http.host) && !config.allowRemotePlaintext) {
    ctx.addIssue({
      code: "custom",
      path: ["httpAddr"],
      message:
        `Plain HTTP on "${config.httpAddr}" would carry tokens in clear: bind it to loopback, use the TLS port, or set --allow-remote-plaintext`,
    });
  }
});

/** Parsed {@link serverConfigSchema}. */
export type ServerConfig = z.output<typeof serverConfigSchema>;

/** The limits every port of the server applies (HTTP and gRPC alike). */
export function connectionLimits(config: ServerConfig): ConnectionLimits {
  return {
    headerTimeoutMs: config.headerTimeout,
    idleTimeoutMs: config.idleTimeout,
    maxConnections: config.maxConnections,
  };
}

/** The flag name of each setting, for messages and `--print-config`. */
export const SERVER_FLAGS: Record<keyof ServerConfig, string> = {
  dataDir: "--data-dir",
  httpAddr: "--http-addr",
  grpcAddr: "--grpc-addr",
  httpsAddr: "--https-addr",
  allowRemotePlaintext: "--allow-remote-plaintext",
  tlsSan: "--tls-san",
  advertise: "--advertise",
  leafTtl: "--leaf-ttl",
  maxLeafTtl: "--max-leaf-ttl",
  renewRate: "--renew-rate",
  caCert: "--ca-cert",
  caKey: "--ca-key",
  caChain: "--ca-chain",
  caKeyPassphraseFile: "--ca-key-passphrase-file",
  trustDomain: "--trust-domain",
  store: "--store",
  reapAfter: "--reap-after",
  logLevel: "--log-level",
  logFormat: "--log-format",
  xdsPlaintextAddr: "--xds-plaintext-addr",
  pushDebounce: "--push-debounce",
  pushMaxDelay: "--push-max-delay",
  headerTimeout: "--header-timeout",
  idleTimeout: "--idle-timeout",
  maxConnections: "--max-connections",
};

/** The effective configuration as a plain object for `--print-config` (durations as text). */
export function describeServerConfig(config: ServerConfig): Record<string, unknown> {
  return {
    ...config,
    reapAfter: formatDuration(config.reapAfter),
    leafTtl: formatDuration(config.leafTtl),
    maxLeafTtl: formatDuration(config.maxLeafTtl),
    pushDebounce: formatDuration(config.pushDebounce),
    pushMaxDelay: formatDuration(config.pushMaxDelay),
    headerTimeout: formatDuration(config.headerTimeout),
    idleTimeout: formatDuration(config.idleTimeout),
  };
}

/**
 * Set to `1`, this variable turns on the server's checks too costly for
 * production: the in-memory mesh view against a fresh read of the store
 * after every push, and every xDS snapshot against Envoy's validation rules
 * before it is served (docs/troubleshooting.md). The end-to-end tests start
 * every server with it. Not a setting of the file or a flag: it is for
 * developers.
 */
export const DEBUG_CHECKS_ENV = "IRONMESH_DEBUG_CHECKS";
