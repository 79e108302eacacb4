/**
 * What the agent serves on its host besides its node's registration: the
 * local xDS endpoint with the Envoy bootstrap and Envoy itself, the DNS
 * server, and the metrics endpoint. Each runs until the agent's signal
 * aborts. An address that cannot be bound (an old agent still stopping,
 * another program) never stops the agent: the rest keeps working while the
 * bind is retried with backoff, and each failure is logged.
 *
 * It also keeps the node's sidecar condition ({@link SidecarState}): a node
 * that declares sidecar ports (an instance's `inboundPort`, an upstream)
 * while no Envoy runs says so, at start and in its registration.
 */
import type { AgentConfig } from "../core/agent_config.ts";
import { formatHostPort, type HostPort } from "../core/address.ts";
import { formatDuration } from "../core/duration.ts";
import { envoyBootstrap } from "../core/envoy_bootstrap.ts";
import type { Logger } from "../core/log.ts";
import type { NodeCondition } from "../core/model.ts";
import { parseSpiffeId } from "../core/spiffe_id.ts";
import { backoffDelay } from "./backoff.ts";
import { Forwarder, resolversOf } from "./dns_forward.ts";
import { DnsResponder } from "./dns_message.ts";
import { type DnsServer, startDnsServer } from "./dns_server.ts";
import { dnsViewPath } from "./dns_view_file.ts";
import { watchRegistry } from "./dns_watch.ts";
import { DnsZone } from "./dns_zone.ts";
import { superviseEnvoy, writeBootstrap } from "./envoy.ts";
import type { Identity } from "./identity.ts";
import type { AgentMetrics } from "./metrics.ts";
import type { ResolvedNode } from "./registration.ts";
import { tlsMaterial } from "./rotation.ts";
import type { ServerApi } from "./server_api.ts";
import { sleep } from "./wait.ts";
import { startXdsRelay, type XdsRelay } from "./xds_relay.ts";

/** Where the local xDS endpoint keeps the server's last configuration. */
export function xdsCachePath(dataDir: string): string {
  return `${dataDir}/xds/cache.json`;
}

/**
 * Calls `start` until it succeeds or `signal` aborts, with backoff (1 s
 * doubling to 30 s) between failures, each logged as `Cannot start the
 * <what>; retrying`. Resolves `undefined` when aborted first.
 */
export async function startWithRetry<T>(
  what: string,
  address: HostPort,
  start: () => Promise<T>,
  options: { log: Logger; random: () => number },
  signal: AbortSignal,
): Promise<T | undefined> {
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      return await start();
    } catch (error) {
      const delay = backoffDelay(attempt, { baseMs: 1_000, capMs: 30_000 }, options.random);
      options.log.error(`Cannot start the ${what}; retrying`, {
        address: formatHostPort(address),
        error,
        retryIn: formatDuration(delay),
      });
      await sleep(delay, signal);
    }
  }
  return undefined;
}

/** Resolves once `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * Whether Envoy runs where the node needs one, as a node condition. Envoy
 * that is being started counts as running: only a missing executable or an
 * exit it has not come back from yet is a condition.
 */
export class SidecarState {
  readonly #declared: string[];
  readonly #binary: string | undefined;
  #exited: string | undefined;

  /** `binary`: the Envoy executable the agent runs, `undefined` when it found none. */
  constructor(config: AgentConfig, binary: string | undefined) {
    this.#declared = [
      ...config.services.filter((s) => s.inboundPort !== undefined).map((s) =>
        `inboundPort ${s.inboundPort} of ${s.name}`
      ),
      ...config.upstreams.map((u) => `upstream ${u.service} on localPort ${u.localPort}`),
    ];
    this.#binary = binary;
  }

  /** Envoy started (`true`) or exited (`false`, with how). */
  set(running: boolean, outcome?: string): void {
    this.#exited = running ? undefined : outcome ?? "exited";
  }

  /** The node's conditions now: none, or `SidecarNotRunning`. */
  conditions(): NodeCondition[] {
    if (this.#declared.length === 0) return [];
    const ports = this.#declared.slice(0, 4).join(", ") +
      (this.#declared.length > 4 ? ` and ${this.#declared.length - 4} more` : "");
    if (this.#binary === undefined) {
      return [{
        type: "SidecarNotRunning",
        reason: "EnvoyNotFound",
        message:
          `Sidecar ports are declared (${ports}) but no Envoy runs: no --envoy-binary and no envoy on PATH; install Envoy or set --envoy-binary`,
      }];
    }
    if (this.#exited === undefined) return [];
    return [{
      type: "SidecarNotRunning",
      reason: "EnvoyExited",
      message:
        `Sidecar ports are declared (${ports}) but Envoy (${this.#binary}) is not running: ${this.#exited}; the agent restarts it`,
    }];
  }
}

/** What {@link runLocalXds} needs. */
export interface LocalXdsOptions {
  listen: HostPort;
  upstream: string;
  dataDir: string;
  node: ResolvedNode;
  identity: () => Identity;
  /** The Envoy executable, if any. */
  envoyBinary: string | undefined;
  sidecar: SidecarState;
  metrics: AgentMetrics;
  log: Logger;
  random: () => number;
  /** Called once the endpoint listens. */
  started: (relay: XdsRelay) => Promise<void>;
}

/** The local xDS endpoint, the Envoy bootstrap and Envoy, until `signal` aborts. */
export async function runLocalXds(options: LocalXdsOptions, signal: AbortSignal): Promise<void> {
  const { log } = options;
  const relay = await startWithRetry(
    "local xDS endpoint",
    options.listen,
    () =>
      startXdsRelay({
        listen: options.listen,
        upstream: options.upstream,
        material: tlsMaterial(options.identity()),
        log,
        cachePath: xdsCachePath(options.dataDir),
        events: options.metrics.relay(),
      }),
    options,
    signal,
  );
  if (relay === undefined) return;
  if (signal.aborted) {
    await relay.close();
    return;
  }
  let envoy: Promise<void> | undefined;
  try {
    // Material may have changed while the bind was retried.
    relay.update(tlsMaterial(options.identity()));
    await options.started(relay);
    const { node } = options;
    const path = await writeBootstrap(
      options.dataDir,
      envoyBootstrap({ node: node.name, labels: node.labels, xds: relay.address }),
    );
    log.info("Envoy bootstrap written", { path, xds: formatHostPort(relay.address) });
    if (options.envoyBinary !== undefined) {
      let starts = 0;
      envoy = superviseEnvoy({
        binary: options.envoyBinary,
        bootstrap: path,
        log,
        random: options.random,
        onState: (running, outcome) => {
          options.sidecar.set(running, outcome);
          options.metrics.envoy(running);
          if (running && ++starts > 1) options.metrics.envoyRestarted();
        },
      }, signal);
    }
  } catch (error) {
    log.error("Cannot write the Envoy bootstrap", { dir: options.dataDir, error });
  }
  await aborted(signal);
  await envoy;
  await relay.close();
}

/** What {@link runDns} needs. */
export interface DnsOptions {
  listen: HostPort;
  /** The agent's data directory, where the DNS view is kept (`dns_view_file.ts`). */
  dataDir: string;
  domain: string;
  ttlMs: number;
  forward: boolean;
  api: ServerApi;
  identity: () => Identity;
  metrics: AgentMetrics;
  log: Logger;
  random: () => number;
  /** Called once the server listens. */
  started: (server: DnsServer) => Promise<void>;
  /** Where the host's resolvers are listed. Default: `/etc/resolv.conf`. */
  resolvConf?: string;
}

/**
 * The DNS server and the registry watch that feeds it, until `signal`
 * aborts. Short names are in the namespace of the node's identity.
 */
export async function runDns(options: DnsOptions, signal: AbortSignal): Promise<void> {
  const { log } = options;
  const namespace = parseSpiffeId(options.identity().identity)?.namespace ?? "default";
  const zone = new DnsZone({
    domain: options.domain,
    ttlSeconds: Math.round(options.ttlMs / 1000),
    namespace,
  });
  let forwarder: Forwarder | undefined;
  if (options.forward) {
    const file = options.resolvConf ?? "/etc/resolv.conf";
    let resolvers: HostPort[] = [];
    try {
      resolvers = resolversOf(await Deno.readTextFile(file), options.listen);
    } catch (error) {
      log.warn("Cannot read the host's resolvers; DNS forwarding is off", { file, error });
    }
    if (resolvers.length > 0) forwarder = new Forwarder(resolvers);
    else log.warn("No resolver to forward to; other names get REFUSED", { file });
  }
  const responder = new DnsResponder(zone, { forward: forwarder !== undefined });
  const watch = watchRegistry({
    api: options.api,
    zone,
    log,
    random: options.random,
    viewPath: dnsViewPath(options.dataDir),
  }, signal);
  const server = await startWithRetry(
    "DNS server",
    options.listen,
    () =>
      startDnsServer({
        listen: options.listen,
        responder,
        ...(forwarder === undefined ? {} : { forwarder }),
        log,
        events: options.metrics.dns(),
      }),
    options,
    signal,
  );
  if (server !== undefined) {
    if (!signal.aborted) await options.started(server);
    await aborted(signal);
    await server.close();
  } else {
    forwarder?.close();
  }
  await watch;
}
