/**
 * The agent's life: get an identity (resume the saved one, or enrol with a
 * join token), then check, register, heartbeat over mTLS, keep the
 * certificate renewed, and leave cleanly. Checks run on their own intervals;
 * a status change wakes the heartbeat loop at once. The loop treats each
 * kind of server answer differently: a lost node or instance is registered
 * again at once, an outage is retried with backoff, and a refused
 * certificate is reported loudly but retried slowly in case an operator
 * fixes it. Beside that loop, when asked, the agent serves the local xDS
 * endpoint, writes the Envoy bootstrap and supervises Envoy, answers DNS
 * and serves its metrics (`local_endpoints.ts`); a renewal hands the relay
 * its new certificate, and a change in the node's conditions (Envoy missing
 * or down where the node declares sidecar ports) registers the node again.
 */
import type { AgentConfig } from "../core/agent_config.ts";
import { formatHostPort, type HostPort } from "../core/address.ts";
import { type Clock, systemClock } from "../core/clock.ts";
import { formatDuration } from "../core/duration.ts";
import { backoffDelay, jitter, retryCapMs } from "./backoff.ts";
import { createCheckRunner } from "./checks.ts";
import { establishIdentity } from "./enrol.ts";
import { type AgentState, ensureDataDir, readHostInfo, writeAgentState } from "./host.ts";
import type { Identity } from "./identity.ts";
import type { Logger } from "../core/log.ts";
import { CheckMonitor } from "./monitor.ts";
import {
  type CheckReport,
  heartbeatBody,
  type HostInfo,
  registrationBody,
  type ResolvedNode,
  resolveNode,
} from "./registration.ts";
import { CertificateRotation, type HeartbeatCa, tlsMaterial } from "./rotation.ts";
import { type ApiResult, ServerApi } from "./server_api.ts";
import { ClientPool } from "./tls_clients.ts";
import { sleep, Wakeup } from "./wait.ts";
import { defaultXdsServer, type XdsRelay } from "./xds_relay.ts";
import { GrpcFiles } from "./grpc_files.ts";
import { runDns, runLocalXds, SidecarState, startWithRetry } from "./local_endpoints.ts";
import { AgentMetrics, type MetricsServer, serveMetrics } from "./metrics.ts";

/** Options of {@link runAgent}. */
export interface AgentOptions {
  /**
   * Base URL (https) of the server's REST API. Default: the saved identity's
   * server, or at enrolment the join token's addresses.
   */
  server?: string | undefined;
  /** The parsed agent configuration. */
  config: AgentConfig;
  /** Directory for `agent.json` and `identity/`; created with mode 0700. */
  dataDir: string;
  /** Join token; needed only when the data directory holds no usable identity. */
  joinToken?: string | undefined;
  /** Leave the node registered on shutdown, e.g. for a quick restart. Default: false. */
  keepInstancesOnExit?: boolean;
  /** Where log lines go. */
  logger: Logger;
  /** Host name and addresses. Default: read from the system. */
  host?: HostInfo;
  /** Random source of jitter, backoff and the renewal time. Default: `Math.random`. */
  random?: () => number;
  /** Decides expiry and renewal times. Default: the system clock. */
  clock?: Clock;
  /** Time after which a call to the server gives up, in milliseconds. Default: 10 000. */
  requestTimeoutMs?: number;
  /** Time allowed for the deregistration on shutdown, in milliseconds. Default: 2 000. */
  deregisterTimeoutMs?: number;
  /**
   * The local xDS endpoint for proxyless gRPC apps and Envoy: a loopback
   * address to listen on (port 0 picks one) and the server's gRPC address
   * to relay to (default: the server URL's host, port 15012). Absent: no
   * local endpoint and no Envoy bootstrap.
   */
  localXds?: { listen: HostPort; upstream?: string | undefined } | undefined;
  /**
   * Start and supervise this Envoy executable with the bootstrap; needs
   * `localXds`. Absent: no Envoy (the caller looks for one on `PATH`).
   */
  envoyBinary?: string | undefined;
  /** The DNS server: where it listens and what it answers. Absent: no DNS server. */
  dns?: { listen: HostPort; domain: string; ttlMs: number; forward: boolean } | undefined;
  /** Where the metrics endpoint listens (loopback). Absent: none. */
  metricsAddr?: HostPort | undefined;
}

/** Spread of the heartbeat interval, so agents started together drift apart. */
const HEARTBEAT_JITTER = 0.1;
/** Backoff cap when the certificate is refused: it will not fix itself within an interval. */
const AUTH_RETRY_CAP_MS = 30_000;

/**
 * Runs the agent until `signal` aborts: gets its identity, checks every
 * service once, registers the node, heartbeats and renews its certificate,
 * and on abort stops the checks and (unless told to keep them) deregisters
 * the node. Resolves once everything has stopped; rejects only when the
 * agent cannot start (bad node name, data directory, no usable identity and
 * no usable join token, enrolment refused).
 */
export async function runAgent(options: AgentOptions, signal: AbortSignal): Promise<void> {
  const log = options.logger;
  const random = options.random ?? Math.random;
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const { config } = options;
  const node = resolveNode(config.node, options.host ?? readHostInfo());
  await ensureDataDir(options.dataDir);
  const identity = await establishIdentity({
    dataDir: options.dataDir,
    node: node.name,
    server: options.server,
    joinToken: options.joinToken,
    log,
    clock,
    random,
    timeoutMs,
  }, signal);
  if (identity === undefined) {
    log.info("Agent stopped before enrolment finished", { node: node.name });
    return;
  }
  // Every call after enrolment goes through this pool: mTLS with the current
  // certificate, trusting the current bundle; rotation swaps its material.
  const pool = new ClientPool(tlsMaterial(identity));
  try {
    await runEnrolled(options, node, identity, pool, signal);
  } finally {
    pool.close();
  }
}

async function runEnrolled(
  options: AgentOptions,
  node: ResolvedNode,
  identity: Identity,
  pool: ClientPool,
  signal: AbortSignal,
): Promise<void> {
  const log = options.logger;
  const random = options.random ?? Math.random;
  const clock = options.clock ?? systemClock;
  const { config } = options;
  const api = new ServerApi(identity.server, {
    clients: pool,
    timeoutMs: options.requestTimeoutMs ?? 10_000,
  });
  // `agent.json` is written once there is something to find (the local xDS
  // endpoint listens, or the node registered), then on every change. Writes
  // go one at a time: they share a temporary file.
  let stateWritten = false;
  const addresses: LocalAddresses = {};
  let writing = Promise.resolve();
  const writeState = (): Promise<void> =>
    writing = writing.then(async () => {
      const ok = await recordState(options, node.name, rotation.identity, log, addresses);
      stateWritten ||= ok;
    });
  let relay: XdsRelay | undefined;
  const grpcFiles = new GrpcFiles({
    dataDir: options.dataDir,
    node: node.name,
    labels: node.labels,
    refreshIntervalMs: config.proxyless.refreshIntervalMs,
    ...(config.proxyless.keyGroup !== undefined ? { keyGroup: config.proxyless.keyGroup } : {}),
  });
  // Proxyless gRPC apps re-read these files: a renewal or a new bundle reaches them there.
  const writeGrpcFiles = async (address: HostPort) => {
    try {
      await grpcFiles.write(rotation.identity, address);
      return true;
    } catch (error) {
      log.error("Cannot write the gRPC bootstrap and certificate files", {
        path: grpcFiles.bootstrapPath,
        error,
      });
      return false;
    }
  };
  const rotation: CertificateRotation = new CertificateRotation({
    dataDir: options.dataDir,
    api,
    pool,
    identity,
    log,
    clock,
    random,
    onChange: async () => {
      // New xDS streams use the new certificate and bundle; running ones finish on the old.
      try {
        relay?.update(tlsMaterial(rotation.identity));
      } catch (error) {
        log.error("Local xDS endpoint cannot use the new certificate; keeping the old", { error });
      }
      if (relay) await writeGrpcFiles(relay.address);
      if (stateWritten) await writeState();
    },
  });
  const intervalMs = config.heartbeat.intervalMs;
  log.info("Agent starting", {
    node: node.name,
    address: node.address,
    server: api.server,
    identity: identity.identity,
    services: config.services.length,
    heartbeatInterval: formatDuration(intervalMs),
  });

  const metrics = new AgentMetrics();
  const sidecar = new SidecarState(config, options.localXds ? options.envoyBinary : undefined);
  for (const condition of sidecar.conditions()) log.warn(condition.message, { ...condition });
  const identityNow = () => rotation.identity;
  const local: Promise<unknown>[] = [];
  if (options.localXds) {
    local.push(runLocalXds({
      listen: options.localXds.listen,
      upstream: options.localXds.upstream ?? defaultXdsServer(identity.server),
      dataDir: options.dataDir,
      node,
      identity: identityNow,
      envoyBinary: options.envoyBinary,
      sidecar,
      metrics,
      log,
      random,
      started: async (r) => {
        relay = r;
        addresses.xds = formatHostPort(r.address);
        if (await writeGrpcFiles(r.address)) addresses.grpcBootstrap = grpcFiles.bootstrapPath;
        await writeState();
      },
    }, signal));
  } else if (options.envoyBinary !== undefined) {
    log.warn("Envoy not started: it needs the local xDS endpoint", {
      binary: options.envoyBinary,
    });
  }
  if (options.dns) {
    local.push(runDns({
      ...options.dns,
      dataDir: options.dataDir,
      api,
      identity: identityNow,
      metrics,
      log,
      random,
      started: async (server) => {
        addresses.dns = formatHostPort(server.address);
        await writeState();
      },
    }, signal));
  }
  if (options.metricsAddr) {
    const listen = options.metricsAddr;
    local.push((async () => {
      const server: MetricsServer | undefined = await startWithRetry(
        "metrics endpoint",
        listen,
        () => serveMetrics(metrics, listen, log),
        { log, random },
        signal,
      );
      if (server === undefined) return;
      addresses.metrics = formatHostPort(server.address);
      await writeState();
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener("abort", () => resolve(), { once: true });
      });
      await server.close();
    })());
  }
  try {
    await runServices(options, node, api, rotation, sidecar, signal, async () => {
      if (!stateWritten) await writeState();
    });
  } finally {
    await Promise.all(local);
    await writing;
  }
}

/**
 * Checks, registration, heartbeats and renewal until `signal` aborts, then
 * deregistration.
 */
async function runServices(
  options: AgentOptions,
  node: ResolvedNode,
  api: ServerApi,
  rotation: CertificateRotation,
  sidecar: SidecarState,
  signal: AbortSignal,
  onRegistered: () => Promise<void>,
): Promise<void> {
  const log = options.logger;
  const random = options.random ?? Math.random;
  const clock = options.clock ?? systemClock;
  const { config } = options;
  const intervalMs = config.heartbeat.intervalMs;
  const runners = [];
  const monitors: CheckMonitor[] = [];
  for (const service of config.services) {
    if (!service.check) continue;
    const runner = createCheckRunner(service.check);
    runners.push(runner);
    monitors.push(new CheckMonitor(service.id, service.check, (s) => runner.run(s)));
  }
  const reports = () => {
    const map = new Map<string, CheckReport>();
    for (const monitor of monitors) map.set(monitor.id, monitor.report);
    return map;
  };

  const wakeup = new Wakeup();
  // Set once a registration was sent, answered or not: it may have reached
  // the server, so shutdown must try to undo it.
  let registrationSent = false;
  const rotating = rotation.run(signal);
  try {
    // Registering with real results, not a guess, keeps a broken instance
    // out of traffic from its first second.
    await Promise.all(monitors.map((m) => m.probe(signal)));
    for (const m of monitors) {
      log.info("Check initial status", { instance: m.id, ...m.report });
    }
    const loops = monitors.map((m) =>
      m.loop(signal, (previous) => {
        log.info("Check status changed", { instance: m.id, previous, ...m.report });
        wakeup.notify();
      })
    );

    let registered = false;
    let failures = 0;
    // The conditions last registered: a change is news for the whole node, so it registers again.
    let conditions = "";
    while (!signal.aborted) {
      const now = sidecar.conditions();
      if (registered && JSON.stringify(now) !== conditions) {
        log.info("Node conditions changed; registering again", { conditions: now });
        registered = false;
      }
      if (!registered) {
        registrationSent = true;
        conditions = JSON.stringify(now);
      }
      const sentAt = clock.now();
      const result: ApiResult<unknown> = registered
        ? await api.heartbeat(
          node.name,
          heartbeatBody(config, reports(), rotation.identity.bundleFingerprint),
          { signal },
        )
        : await api.register(node.name, registrationBody(node, config, reports(), now), {
          signal,
        });
      if (signal.aborted) break;
      if (result.kind === "ok") {
        if (!registered) {
          registered = true;
          log.info("Node registered", { node: node.name, instances: config.services.length });
          await onRegistered();
        } else {
          rotation.noteHeartbeat(heartbeatCa(result.body), sentAt);
          if (failures > 0) log.info("Heartbeat recovered", { node: node.name, failures });
        }
        failures = 0;
        await wakeup.wait(jitter(intervalMs, HEARTBEAT_JITTER, random), signal);
        continue;
      }
      if (registered && result.kind === "rejected" && [404, 409].includes(result.status)) {
        log.warn("Server lost this node or an instance; registering again", {
          node: node.name,
          status: result.status,
          detail: result.problem.detail,
        });
        registered = false;
        continue;
      }
      const auth = result.kind === "rejected" && [401, 403].includes(result.status);
      const delay = backoffDelay(
        failures,
        { baseMs: 200, capMs: auth ? AUTH_RETRY_CAP_MS : retryCapMs(intervalMs) },
        random,
      );
      failures++;
      logFailure(log, registered ? "Heartbeat" : "Registration", result, {
        node: node.name,
        attempt: failures,
        retryIn: formatDuration(delay),
      });
      await sleep(delay, signal);
    }
    await Promise.all(loops);
  } finally {
    for (const runner of runners) runner.close();
    await rotating;
  }

  if (registrationSent && !options.keepInstancesOnExit) {
    const result = await api.deregister(node.name, {
      timeoutMs: options.deregisterTimeoutMs ?? 2_000,
    });
    if (result.kind === "ok" || (result.kind === "rejected" && result.status === 404)) {
      log.info("Node deregistered", { node: node.name });
    } else {
      logFailure(log, "Deregistration", result, { node: node.name });
    }
  }
  log.info("Agent stopped", { node: node.name });
}

/** The `ca` part of a heartbeat answer, if any. */
function heartbeatCa(body: unknown): HeartbeatCa | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const ca = (body as Record<string, unknown>).ca;
  return typeof ca === "object" && ca !== null ? ca as HeartbeatCa : undefined;
}

/** The addresses the agent's local endpoints bound, as `agent.json` lists them. */
interface LocalAddresses {
  /** The local xDS endpoint. */
  xds?: string;
  /** The xDS bootstrap of proxyless gRPC apps (`grpc_files.ts`), once written. */
  grpcBootstrap?: string;
  /** The DNS server (UDP and TCP). */
  dns?: string;
  /** The metrics endpoint. */
  metrics?: string;
}

/** `agent.json`: {@link AgentState} and the addresses of the local endpoints that listen. */
function agentState(
  node: string,
  identity: Identity,
  addresses: LocalAddresses,
): AgentState & LocalAddresses {
  return {
    node,
    server: identity.server,
    pid: Deno.pid,
    certificate: {
      notAfter: new Date(identity.leaf.notAfter).toISOString(),
      identity: identity.identity,
      serial: identity.leaf.serial,
    },
    ...addresses,
  };
}

async function recordState(
  options: AgentOptions,
  node: string,
  identity: Identity,
  log: Logger,
  addresses: LocalAddresses,
): Promise<boolean> {
  try {
    await writeAgentState(options.dataDir, agentState(node, identity, addresses));
    return true;
  } catch (error) {
    // The node is registered and serving; a missing state file only hurts
    // local tooling, so say so rather than take the node down.
    log.error("Cannot write agent.json", { dir: options.dataDir, error });
    return false;
  }
}

function logFailure(
  log: Logger,
  what: string,
  result: Exclude<ApiResult<unknown>, { kind: "ok" }>,
  fields: Record<string, unknown>,
): void {
  if (result.kind === "unreachable") {
    log.warn(`${what} failed: server unreachable`, { ...fields, error: result.error });
    return;
  }
  const { status, title, detail, problems } = result.problem;
  const more = {
    ...fields,
    status,
    title,
    detail,
    ...(problems.length > 0 ? { problems } : {}),
  };
  if (status === 401 || status === 403) {
    log.error(`${what} refused: the server did not accept this node's certificate`, more);
  } else if (status >= 500) {
    log.warn(`${what} failed: server error`, more);
  } else {
    log.error(`${what} rejected`, more);
  }
}
