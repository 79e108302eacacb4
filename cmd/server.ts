import { Command, Option } from "commander";
import { parse as parseYaml, stringify } from "yaml";
import { TokenService } from "../auth/tokens.ts";
import { createApp } from "../api/app.ts";
import { Metrics } from "../api/metrics.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../core/address.ts";
import { systemClock } from "../core/clock.ts";
import { InvalidError, UnauthorizedError, UnavailableError } from "../core/errors.ts";
import { jsonLogger, type Logger } from "../core/log.ts";
import { meshChange } from "../core/mesh_change.ts";
import {
  describeServerConfig,
  SERVER_FLAGS,
  type ServerConfig,
  serverConfigSchema,
} from "../core/server_config.ts";
import { parseConfigText, parseWith } from "../core/validate.ts";
import { VERSION } from "../core/version.ts";
import { ChangeFeed } from "../registry/feed.ts";
import { Registry } from "../registry/registry.ts";
import { createBackup } from "../store/backup.ts";
import { isPostgresUrl, openPostgresStore } from "../store/postgres.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import type { Store } from "../store/store.ts";
import { AdsServer, type NodeInfo, type ProxyPeer } from "../xds/ads_server.ts";
import { type GrpcListener, MeshCertificates, startGrpcServer } from "../xds/grpc_server.ts";
import { PushPipeline } from "../xds/push.ts";
import { PolicyService } from "../policy/service.ts";
import { durationMs } from "../core/policy/model.ts";
import { spiffeId } from "../core/spiffe_id.ts";
import { listenTls, type TlsMaterial } from "../api/tls_listener.ts";
import { CertificateAuthority } from "../ca/authority.ts";
import { IdentityService } from "../ca/identity.ts";
import { JoinTokens } from "../ca/join_tokens.ts";
import { isIP } from "node:net";
import { resolveLogFormat, stderrLine } from "./output.ts";

/** A server started by {@link startServer}. */
export interface RunningServer {
  http: HostPort;
  https: HostPort;
  grpc: HostPort;
  /** The loopback plaintext xDS listener, when configured. */
  xdsPlaintext: HostPort | null;
  adminTokenFile: string;
  /** Graceful stop: refuse new work, finish in-flight requests, flush, close the store. */
  stop(): Promise<void>;
}

const ADMIN_TOKEN_META = "admin_token_id";
/** How often a root rotation checks whether it can take its next step. */
const ROTATION_TICK_MS = 1_000;
/** How often the CA checks whether its intermediate is due for renewal. */
const MAINTENANCE_MS = 12 * 3_600_000;

/** Starts every part of the server on `config` and returns once all ports are bound. */
export async function startServer(config: ServerConfig, log: Logger): Promise<RunningServer> {
  await Deno.mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const store = await openStore(config);
  // What has started so far, stopped in reverse if a later step fails.
  const started: (() => Promise<void> | void)[] = [() => store.close()];
  const unwind = async () => {
    for (const stop of started.reverse()) await Promise.try(stop).catch(() => {});
  };
  try {
    const clock = systemClock;
    const tokens = new TokenService(store, clock);
    const adminTokenFile = `${config.dataDir}/admin.token`;
    await ensureAdminToken(store, tokens, adminTokenFile, log);
    const registry = new Registry(store, { clock, log, reapAfterMs: config.reapAfter });
    await registry.start();
    started.push(() => registry.stop());

    const authority = await openAuthority(config, clock);
    started.push(() => authority.close());
    const joinTokens = await JoinTokens.open(store, clock, `${config.dataDir}/token-signing.key`);
    // The push pipeline starts after the API listens: until then a policy write is stored and
    // the pipeline's first build reads it, and a dry run has no proxies to compare.
    let pushRef: PushPipeline | null = null;
    const policyFeed = new ChangeFeed();
    policyFeed.publish(await store.policyRevision());
    // On a failed start too: a blocking policy list must not hold the shutdown.
    started.push(() => policyFeed.close());
    const policies = new PolicyService({
      store,
      log,
      changed: (change) => {
        pushRef?.changed(change);
        store.policyRevision().then((revision) => policyFeed.publish(revision)).catch((error) =>
          log.error("Cannot read the policy revision", { error })
        );
      },
      preview: (set) => pushRef?.preview(set) ?? [],
    });
    const identity = new IdentityService(store, authority, joinTokens, {
      clock,
      log,
      leafTtlMs: config.leafTtl,
      currentLeafTtlMs: () => {
        const ttl = pushRef?.meshConfig()?.spec.certificates?.ttl;
        return ttl === undefined ? undefined : durationMs(ttl);
      },
      renewRatePerSecond: config.renewRate,
      // At least one token, or a rate below 0.5/s could never grant a renewal.
      renewBurst: Math.max(1, 2 * config.renewRate),
      liveNodes: () => Promise.resolve(registry.aliveNodes()),
    });
    await identity.start();

    let stopping = false;
    const metrics = new Metrics({
      objects: () => store.counts(),
      revision: () => registry.feed.revision,
      watchers: () => registry.feed.watchers,
      liveNodes: () => registry.liveNodes,
      leafExpiry: async () => {
        const expiry = new Map<string, number>();
        const current = await store.listCertificates({
          current: true,
          liveAt: new Date().toISOString(),
        });
        for (const c of current) {
          const ms = Date.parse(c.notAfter);
          expiry.set(c.node, Math.min(ms, expiry.get(c.node) ?? Infinity));
        }
        return expiry;
      },
      caExpiry: () =>
        authority.status().map((g) => ({
          generation: g.id,
          stage: g.stage,
          root: Date.parse(g.rootNotAfter),
          intermediate: Date.parse(g.intermediateNotAfter),
        })),
    });
    let advertise: string[] = config.advertise;
    let adsServers: AdsServer[] = [];
    const app = createApp({
      registry,
      tokens,
      store,
      metrics,
      log,
      identity,
      advertise: () => advertise,
      backup: () => createBackup(store, config.dataDir),
      proxies: () => adsServers.flatMap((a) => a.status()),
      configDump: (id) => adsServers.map((a) => a.configDump(id)).find((d) => d !== null) ?? null,
      policies,
      policyFeed,
      explainProxy: (id) => Promise.resolve(pushRef?.explain(id) ?? null),
      stopping: () => stopping,
    });
    const http = listenHttp(parseHostPort(config.httpAddr) as HostPort, app.fetch);
    started.push(() => http.server.shutdown());

    const httpsAddr = parseHostPort(config.httpsAddr) as HostPort;
    const serverCert = () => issueServingCertificate(authority, config, httpsAddr);
    const tls = await listenTls(httpsAddr, await serverCert(), app.fetch).catch((error) => {
      throw new UnavailableError(
        `Cannot listen on --https-addr ${config.httpsAddr}: ${error.message}`,
      );
    });
    started.push(() => tls.stop());
    if (advertise.length === 0) {
      advertise = [`https://${formatHostPort(advertisedHost(tls.address))}`];
    }

    // The serving certificate follows the CA (rotation, intermediate renewal) and its own lifetime.
    let reloading = Promise.resolve();
    const reloadTls = (why: string) => {
      reloading = reloading.then(async () => {
        const material = await serverCert();
        tls.reload(material);
        grpcCerts.update(material);
        log.info("TLS material reloaded", { reason: why, bundle: authority.bundle().fingerprint });
      }).catch((error) => log.error("Cannot reload TLS material", { error }));
    };
    identity.events = {
      issued: (kind, node) => {
        metrics.certificatesIssued.inc({ kind });
        // An enrolment may give the node another identity, which its peers check.
        if (kind === "enrol") push.changed(meshChange({ nodes: [node] }));
      },
      refused: (kind, reason) => metrics.certificatesRefused.inc({ kind, reason }),
      tokenUsed: () => metrics.joinTokens.inc({ result: "used" }),
      tokenRefused: () => metrics.joinTokens.inc({ result: "refused" }),
      revoked: (nodes) => {
        for (const node of nodes) {
          tls.closeNode(node);
          ads.closeNode(node);
        }
        // Peers stop accepting a revoked node's identity.
        push.changed(meshChange({ nodes }));
      },
      trustChanged: () => {
        reloadTls("trust changed");
        push.changed(meshChange({ trust: true }));
      },
    };
    const timers = [
      setInterval(
        () => reloadTls("serving certificate renewal"),
        Math.max(1_000, config.leafTtl / 2),
      ),
      setInterval(() => {
        identity.advanceRotation().catch((error) =>
          log.error("Root rotation step failed", { error })
        );
      }, ROTATION_TICK_MS),
      setInterval(() => {
        authority.maintain().then((report) => {
          if (report.renewed) reloadTls("intermediate renewed");
          if (report.warning) log.warn(report.warning);
        }).catch((error) => log.error("CA maintenance failed", { error }));
      }, MAINTENANCE_MS),
    ];
    started.push(() => timers.forEach(clearInterval));

    // xDS: the push pipeline turns registry and trust changes into snapshots; the ADS server
    // streams them on the gRPC port (mTLS) and, for local tools and tests, a loopback plaintext port.
    const push = new PushPipeline({
      store,
      log,
      trust: () => ({ trustDomain: authority.trustDomain, bundlePem: authority.bundle().pem }),
      debounceMs: config.pushDebounce,
      maxDelayMs: config.pushMaxDelay,
      pushed: (reason, ms) => metrics.pushes.observe({ reason }, ms / 1000),
    });
    const adsEvents = {
      connected: (kind: string, delta: 1 | -1) => metrics.proxies.inc({ kind }, delta),
      nack: (typeUrl: string) => metrics.nacks.inc({ type: typeLabel(typeUrl) }),
      acked: (typeUrl: string, sentAt: number) =>
        metrics.convergence.observe({ type: typeLabel(typeUrl) }, (Date.now() - sentAt) / 1000),
    };
    const ads = new AdsServer({
      log,
      snapshotFor: (peer) => push.snapshotFor(peer),
      snapshotKey: (peer) => push.snapshotKey(peer),
      identify: (call, node) => {
        const cert = call.getAuthContext().sslPeerCertificate;
        if (!cert) throw new UnauthorizedError("xDS needs the proxy's mesh certificate (mTLS)");
        const principal = identity.authenticate(true, null, cert);
        return { node: principal.node, identity: principal.identity, kind: proxyKind(node) };
      },
      events: adsEvents,
    });
    const plainAds = config.xdsPlaintextAddr
      ? new AdsServer({
        name: "local",
        log,
        snapshotFor: (peer) => push.snapshotFor(peer),
        snapshotKey: (peer) => push.snapshotKey(peer),
        identify: (_call, node) => claimedPeer(node, authority.trustDomain),
        events: adsEvents,
      })
      : null;
    adsServers = plainAds ? [ads, plainAds] : [ads];
    await push.start(adsServers);
    pushRef = push;
    const unsubscribe = registry.subscribe((change) => push.changed(change));
    started.push(() => {
      unsubscribe();
      push.stop();
    });
    const grpcCerts = new MeshCertificates(await serverCert());
    const grpc = await startGrpcServer(parseHostPort(config.grpcAddr) as HostPort, {
      isServing: () => !stopping,
      ads,
      tls: grpcCerts,
    }).catch((error) => {
      throw new UnavailableError(
        `Cannot listen on --grpc-addr ${config.grpcAddr}: ${error.message}`,
      );
    });
    started.push(() => grpc.stop());
    let plainXds: GrpcListener | null = null;
    if (plainAds && config.xdsPlaintextAddr) {
      plainXds = await startGrpcServer(parseHostPort(config.xdsPlaintextAddr) as HostPort, {
        isServing: () => !stopping,
        ads: plainAds,
      });
      started.push(() => plainXds!.stop());
    }
    const info = {
      http: formatHostPort(http.address),
      https: formatHostPort(tls.address),
      grpc: formatHostPort(grpc.address),
      ...(plainXds ? { xdsPlaintext: formatHostPort(plainXds.address) } : {}),
      pid: Deno.pid,
      version: VERSION,
    };
    await Deno.writeTextFile(`${config.dataDir}/server.json`, JSON.stringify(info, null, 2) + "\n");
    return {
      http: http.address,
      https: tls.address,
      grpc: grpc.address,
      xdsPlaintext: plainXds?.address ?? null,
      adminTokenFile,
      async stop() {
        stopping = true;
        timers.forEach(clearInterval);
        // Wake blocking queries and event streams first, or shutdown would wait for them.
        registry.feed.close();
        policyFeed.close();
        await Promise.all([http.server.shutdown(), tls.stop()]);
        push.stop();
        // Proxies hold their streams open; end them so the gRPC ports can close.
        for (const server of adsServers) server.closeAll();
        await Promise.all([grpc.stop(), plainXds?.stop()]);
        await registry.stop();
        authority.close();
        await store.close();
        await Deno.remove(`${config.dataDir}/server.json`).catch(() => {});
      },
    };
  } catch (error) {
    await unwind();
    throw error;
  }
}

async function openAuthority(config: ServerConfig, clock: typeof systemClock) {
  let passphrase = Deno.env.get("IRONMESH_CA_KEY_PASSPHRASE");
  if (config.caKeyPassphraseFile) {
    passphrase = (await Deno.readTextFile(config.caKeyPassphraseFile).catch((error) => {
      throw new InvalidError(
        `Cannot read --ca-key-passphrase-file "${config.caKeyPassphraseFile}": ${error.message}`,
      );
    })).trim();
  }
  return await CertificateAuthority.open({
    dir: `${config.dataDir}/ca`,
    trustDomain: config.trustDomain,
    clock,
    maxLeafTtlMs: config.maxLeafTtl,
    ...(passphrase ? { passphrase } : {}),
    ...(config.caCert && config.caKey && config.caChain
      ? { import: { certFile: config.caCert, keyFile: config.caKey, chainFile: config.caChain } }
      : {}),
  });
}

/**
 * A serving certificate for the TLS port: loopback names, the host name, the
 * bound address when it is a specific one, and the operator's `--tls-san`.
 */
async function issueServingCertificate(
  authority: CertificateAuthority,
  config: ServerConfig,
  bind: HostPort,
): Promise<TlsMaterial> {
  const names = ["localhost", Deno.hostname().toLowerCase(), "127.0.0.1", "::1", ...config.tlsSan];
  if (!WILDCARD.has(bind.host)) names.push(bind.host);
  const ips = [...new Set(names.filter((n) => isIP(n) !== 0))];
  const dns = [...new Set(names.filter((n) => isIP(n) === 0))];
  const issued = await authority.issueServerCertificate({
    dnsNames: dns,
    ipAddresses: ips,
    ttlMs: config.leafTtl,
  });
  return { key: issued.keyPem, cert: issued.chainPem, ca: authority.bundle().pem };
}

const WILDCARD = new Set(["0.0.0.0", "::", "[::]"]);

/** Envoy says so in its user agent; anything else speaking ADS here is a proxyless gRPC client. */
function proxyKind(node: NodeInfo): ProxyPeer["kind"] {
  const declared = node.metadata?.["IRONMESH_PROXY"];
  if (declared === "sidecar" || declared === "proxyless") return declared;
  return node.user_agent_name === "envoy" ? "sidecar" : "proxyless";
}

/**
 * Who a proxy on the loopback plaintext listener says it is (node metadata
 * `IRONMESH_NODE` / `IRONMESH_NAMESPACE`, else its node id): trusted only
 * because that listener binds to loopback, for local tools and tests.
 */
function claimedPeer(node: NodeInfo, trustDomain: string): ProxyPeer {
  const name = String(node.metadata?.["IRONMESH_NODE"] ?? node.id ?? "local");
  const namespace = String(node.metadata?.["IRONMESH_NAMESPACE"] ?? "default");
  return {
    node: name,
    identity: spiffeId(trustDomain, namespace, "default"),
    kind: proxyKind(node),
  };
}

/** The short xDS type name for metric labels (`Listener`, `Cluster`, …), a bounded set. */
function typeLabel(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf(".") + 1);
}

/** The address to put in join tokens: the bound one, or the host name for a wildcard bind. */
function advertisedHost(bound: HostPort): HostPort {
  return WILDCARD.has(bound.host)
    ? { host: Deno.hostname().toLowerCase(), port: bound.port }
    : bound;
}

function listenHttp(
  addr: HostPort,
  handler: Deno.ServeHandler,
): { server: Deno.HttpServer<Deno.NetAddr>; address: HostPort } {
  try {
    const server = Deno.serve(
      { hostname: addr.host, port: addr.port, onListen: () => {} },
      handler,
    );
    return { server, address: { host: addr.host, port: server.addr.port } };
  } catch (error) {
    throw new UnavailableError(
      `Cannot listen on --http-addr ${formatHostPort(addr)}: ${(error as Error).message}`,
    );
  }
}

async function openStore(config: ServerConfig): Promise<Store> {
  const url = config.store ?? `sqlite:${config.dataDir}/ironmesh.db`;
  if (url.startsWith("sqlite:")) {
    return openSqliteStore(url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, ""));
  }
  if (isPostgresUrl(url)) {
    if (!URL.canParse(url)) {
      throw new InvalidError(
        `Invalid --store: not a URL; expected postgres://USER@HOST:PORT/DATABASE`,
      );
    }
    return await openPostgresStore(url);
  }
  throw new InvalidError(
    `Invalid --store "${url}": expected sqlite:PATH or postgres://USER@HOST:PORT/DATABASE`,
  );
}

/**
 * Makes sure a working admin token is in `file` (mode 0600). A later start
 * reuses it; if the file was deleted or the token revoked, a new one
 * replaces it (the old one is revoked, since nobody can use it any more), so
 * an operator can never lock themselves out of a server they can log into.
 */
async function ensureAdminToken(store: Store, tokens: TokenService, file: string, log: Logger) {
  const existingId = await store.getMeta(ADMIN_TOKEN_META);
  const onDisk = await Deno.readTextFile(file).then((t) => t.trim(), () => null);
  if (existingId && onDisk) {
    const usable = await tokens.verify(onDisk).then(() => true, () => false);
    if (usable) return;
  }
  if (existingId) {
    await tokens.revoke(existingId).catch(() => {});
    log.warn("Admin token file missing, changed or revoked: issued a new admin token", { file });
  }
  const created = await tokens.create({
    kind: "api",
    role: "admin",
    description: "bootstrap admin token",
  });
  const tmp = `${file}.tmp`;
  await Deno.writeTextFile(tmp, created.token + "\n", { mode: 0o600 });
  await Deno.chmod(tmp, 0o600);
  await Deno.rename(tmp, file);
  await store.setMeta(ADMIN_TOKEN_META, created.id);
}

/** Options as commander hands them over: only what a flag or variable set. */
type ServerFlags = Partial<Record<keyof ServerConfig, string>> & {
  config?: string;
  printConfig?: boolean;
};

/**
 * Resolves the effective configuration: flags and variables over the file
 * over defaults. A bad flag value is reported under the flag's name.
 */
export async function resolveServerConfig(flags: ServerFlags): Promise<ServerConfig> {
  let fromFile: Record<string, unknown> = {};
  if (flags.config) {
    const text = await Deno.readTextFile(flags.config).catch((error) => {
      throw new InvalidError(`Cannot read configuration file "${flags.config}": ${error.message}`);
    });
    parseConfigText(text, flags.config, serverConfigSchema);
    fromFile = parseYaml(text) ?? {};
  }
  const overrides = Object.fromEntries(
    Object.keys(SERVER_FLAGS).flatMap((key) => {
      const value = flags[key as keyof ServerConfig];
      return value === undefined ? [] : [[key, value]];
    }),
  );
  try {
    return parseWith(serverConfigSchema, { ...fromFile, ...overrides }, "server configuration");
  } catch (error) {
    if (error instanceof InvalidError) {
      const lines = error.problems.map((p) => {
        const key = p.pointer.slice(1) as keyof ServerConfig;
        const where = key in overrides || !flags.config
          ? SERVER_FLAGS[key] ?? p.pointer
          : `${flags.config}: ${p.pointer}`;
        return `${where}: ${p.message}`;
      });
      throw new InvalidError(
        `Invalid server configuration:\n  ${lines.join("\n  ")}`,
        error.problems,
      );
    }
    throw error;
  }
}

/** Every server flag: flag, environment variable, help. Defaults live in the config schema. */
const SERVER_OPTIONS: [string, string, string][] = [
  ["--config <file>", "IRONMESH_CONFIG", "YAML file with any of the settings below"],
  ["--data-dir <dir>", "IRONMESH_DATA_DIR", "data directory (default: ./ironmesh-data)"],
  [
    "--http-addr <host:port>",
    "IRONMESH_HTTP_ADDR",
    "plain-HTTP REST API address, loopback only unless allowed; port 0 picks a free port (default: 127.0.0.1:15080)",
  ],
  [
    "--https-addr <host:port>",
    "IRONMESH_HTTPS_ADDR",
    "TLS address for agents (mTLS) and remote automation; port 0 picks a free port (default: 0.0.0.0:15443)",
  ],
  [
    "--grpc-addr <host:port>",
    "IRONMESH_GRPC_ADDR",
    "gRPC address for xDS (mTLS, client certificates required); port 0 picks a free port (default: 0.0.0.0:15012)",
  ],
  [
    "--allow-remote-plaintext",
    "IRONMESH_ALLOW_REMOTE_PLAINTEXT",
    "allow --http-addr on a non-loopback address (tokens then cross the network in clear)",
  ],
  [
    "--tls-san <names>",
    "IRONMESH_TLS_SAN",
    "extra DNS names and IPs for the server certificate, comma-separated",
  ],
  [
    "--advertise <urls>",
    "IRONMESH_ADVERTISE",
    "URLs agents enrol with, written into join tokens, comma-separated (default: the TLS address)",
  ],
  [
    "--trust-domain <name>",
    "IRONMESH_TRUST_DOMAIN",
    "SPIFFE trust domain (default: ironmesh.local)",
  ],
  [
    "--leaf-ttl <duration>",
    "IRONMESH_LEAF_TTL",
    "lifetime of workload certificates (default: 24h)",
  ],
  [
    "--max-leaf-ttl <duration>",
    "IRONMESH_MAX_LEAF_TTL",
    "upper bound of --leaf-ttl (default: 168h)",
  ],
  [
    "--renew-rate <per-second>",
    "IRONMESH_RENEW_RATE",
    "certificate renewals granted per second, in bursts of twice that (default: 50)",
  ],
  [
    "--ca-cert <file>",
    "IRONMESH_CA_CERT",
    "your signing CA certificate (PEM) instead of a generated CA; with --ca-key and --ca-chain",
  ],
  ["--ca-key <file>", "IRONMESH_CA_KEY", "private key (PEM) of --ca-cert"],
  [
    "--ca-chain <file>",
    "IRONMESH_CA_CHAIN",
    "chain from --ca-cert up to and including your root (PEM)",
  ],
  [
    "--ca-key-passphrase-file <file>",
    "IRONMESH_CA_KEY_PASSPHRASE_FILE",
    "passphrase that encrypts CA keys at rest (or set IRONMESH_CA_KEY_PASSPHRASE)",
  ],
  [
    "--store <url>",
    "IRONMESH_STORE",
    "storage URL, sqlite:PATH or postgres://USER@HOST:PORT/DB (default: sqlite:DATA_DIR/ironmesh.db)",
  ],
  [
    "--reap-after <duration>",
    "IRONMESH_REAP_AFTER",
    "remove nodes silent this long (default: 72h)",
  ],
  [
    "--xds-plaintext-addr <host:port>",
    "IRONMESH_XDS_PLAINTEXT_ADDR",
    "plaintext xDS listener for local tools and tests, loopback only (default: none)",
  ],
  [
    "--push-debounce <duration>",
    "IRONMESH_PUSH_DEBOUNCE",
    "push after the registry has been quiet this long (default: 100ms)",
  ],
  [
    "--push-max-delay <duration>",
    "IRONMESH_PUSH_MAX_DELAY",
    "but never later than this after the first change (default: 1s)",
  ],
  ["--log-level <level>", "IRONMESH_LOG_LEVEL", "debug, info, warn or error (default: info)"],
  [
    "--log-format <format>",
    "IRONMESH_LOG_FORMAT",
    "json, text, or auto: text on a terminal, JSON otherwise (default: auto)",
  ],
];

/** `ironmesh server`. */
export function serverCommand(): Command {
  const command = new Command("server")
    .description("Run the Ironmesh control plane (registry, REST API, CA, gRPC)");
  for (const [flags, env, help] of SERVER_OPTIONS) {
    command.addOption(new Option(flags, help).env(env));
  }
  return command
    .addOption(new Option("--print-config", "print the effective configuration as YAML and exit"))
    .action(async (flags: ServerFlags, command: Command) => {
      // Commander turns a boolean flag on for any value of its variable, "false" included.
      if (command.getOptionValueSource("allowRemotePlaintext") === "env") {
        flags.allowRemotePlaintext = Deno.env.get("IRONMESH_ALLOW_REMOTE_PLAINTEXT") ?? "false";
      }
      const config = await resolveServerConfig(flags);
      if (flags.printConfig) {
        console.log(stringify(describeServerConfig(config)).trimEnd());
        return;
      }
      const log = jsonLogger(stderrLine, {
        level: config.logLevel,
        format: resolveLogFormat(config.logFormat),
      });
      const server = await startServer(config, log);
      // Listen for signals before announcing readiness: a supervisor (or a test) that stops the
      // server right after "ready" must get a clean shutdown, not the default kill.
      const signalled = waitForSignal();
      log.info("Ironmesh server started", {
        version: VERSION,
        http: formatHostPort(server.http),
        https: formatHostPort(server.https),
        grpc: formatHostPort(server.grpc),
        dataDir: config.dataDir,
      });
      console.log(`Ironmesh ${VERSION} server ready`);
      console.log(`  REST API:    http://${formatHostPort(server.http)}`);
      console.log(`  TLS (mTLS):  https://${formatHostPort(server.https)}`);
      console.log(`  gRPC (xDS):  ${formatHostPort(server.grpc)}`);
      if (server.xdsPlaintext) {
        console.log(
          `  xDS (plain): ${formatHostPort(server.xdsPlaintext)} (loopback, tools and tests)`,
        );
      }
      console.log(`  Admin token: ${server.adminTokenFile}`);
      await signalled;
      log.info("Shutting down");
      await server.stop();
      log.info("Stopped cleanly");
    });
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
    const handler = () => {
      for (const s of signals) Deno.removeSignalListener(s, handler);
      resolve();
    };
    for (const s of signals) Deno.addSignalListener(s, handler);
  });
}
