/**
 * The server's wiring: every part built once, in the order its dependencies
 * exist (store → tokens, registry, CA → push pipeline → policies and
 * identity → ADS servers → the REST app and its listeners → gRPC), so no
 * part is reached through a reference filled in later. The parts talk to
 * each other only through the callbacks given here; changes reach the push
 * pipeline as keyed change events (`core/mesh_change.ts`).
 */
import { TokenService } from "../auth/tokens.ts";
import { createApp } from "../api/app.ts";
import { Metrics } from "../api/metrics.ts";
import { registerProcessMetrics } from "../api/process_metrics.ts";
import { listenPlain } from "../api/http_listener.ts";
import { listenTls } from "../api/tls_listener.ts";
import { IdentityService } from "../ca/identity.ts";
import { formatHostPort, type HostPort, parseHostPort } from "../core/address.ts";
import { systemClock } from "../core/clock.ts";
import { UnauthorizedError, UnavailableError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { meshChange } from "../core/mesh_change.ts";
import { durationMs } from "../core/policy/model.ts";
import { connectionLimits, DEBUG_CHECKS_ENV, type ServerConfig } from "../core/server_config.ts";
import { VERSION } from "../core/version.ts";
import { PolicyService } from "../policy/service.ts";
import { claimDataDir, dataDirError } from "./data_dir.ts";
import { installSource } from "./install_artifacts.ts";
import { followReplicas } from "./replica_feed.ts";
import { ChangeFeed } from "../registry/feed.ts";
import { Registry } from "../registry/registry.ts";
import { createBackup } from "../store/backup.ts";
import { LeaderElector } from "../store/leader_elector.ts";
import { AdsServer } from "../xds/ads_server.ts";
import { type GrpcListener, MeshCertificates, startGrpcServer } from "../xds/grpc_server.ts";
import { PushPipeline } from "../xds/push.ts";
import {
  advertisedHost,
  claimedPeer,
  ensureAdminToken,
  hasCertificateProvider,
  issueServingCertificate,
  openCa,
  openStore,
  proxyKind,
  typeLabel,
} from "./server_parts.ts";

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

/** How often a root rotation checks whether it can take its next step. */
const ROTATION_TICK_MS = 1_000;
/** How often the CA checks whether its intermediate is due for renewal. */
const MAINTENANCE_MS = 12 * 3_600_000;

/** Whether `IRONMESH_DEBUG_CHECKS=1` asks for the checks too costly for production. */
function debugChecks(): boolean {
  return Deno.env.get(DEBUG_CHECKS_ENV) === "1";
}

/** Starts every part of the server on `config` and returns once all ports are bound. */
export async function startServer(config: ServerConfig, log: Logger): Promise<RunningServer> {
  const claim = await claimDataDir(config.dataDir);
  const store = await openStore(config).catch((error) => {
    claim.release();
    throw error;
  });
  // What has started so far, stopped in reverse if a later step fails.
  const started: (() => Promise<void> | void)[] = [claim.release, () => store.close()];
  const unwind = async () => {
    for (const stop of started.reverse()) await Promise.try(stop).catch(() => {});
  };
  try {
    // Read before any state is loaded: the replica follows the shared log from here, so a write
    // another replica commits while this one loads is applied afterwards, never missed.
    const logStart = await store.log?.head() ?? 0;
    const clock = systemClock;
    const tokens = new TokenService(store, clock);
    const adminTokenFile = `${config.dataDir}/admin.token`;
    await ensureAdminToken(store, tokens, adminTokenFile, log);
    // One replica runs the singleton duties (the stale sweep, the CA's intermediate renewal and
    // root rotation steps); on SQLite the one server always does. The first attempt is made now,
    // so a lone replica leads from its first sweep.
    const elector = new LeaderElector(store.leases ?? null, {
      self: store.log?.origin ?? Deno.hostname(),
      log,
    });
    await elector.start();
    started.push(() => elector.stop());
    const registry = new Registry(store, {
      clock,
      log,
      reapAfterMs: config.reapAfter,
      leading: () => elector.leading,
      fence: () => elector.fence(),
    });
    await registry.start();
    started.push(() => registry.stop());

    // On PostgreSQL every replica opens the one CA kept in the database (the first creates it).
    const { authority, joinTokens } = await openCa(config, clock, {
      store,
      renew: elector.leading,
    });
    started.push(() => authority.close());
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
    const processMetrics = registerProcessMetrics(metrics.registry);
    started.push(() => processMetrics.stop());

    // xDS: the push pipeline turns registry, policy and trust changes into snapshots; the ADS
    // server streams them on the gRPC port (mTLS) and, for local tools and tests, a loopback
    // plaintext port. Built before the policies and the identity service, which consult it.
    const push = new PushPipeline({
      store,
      log,
      trust: () => ({ trustDomain: authority.trustDomain, bundlePem: authority.bundle().pem }),
      debounceMs: config.pushDebounce,
      maxDelayMs: config.pushMaxDelay,
      pushed: (reason, ms) => metrics.pushes.observe({ reason }, ms / 1000),
      // Debug checks (the tests turn them on): the view against the store after every push, and
      // every snapshot against Envoy's validation rules before it is served.
      selfCheck: debugChecks(),
      envoyRules: debugChecks(),
    });
    const policyFeed = new ChangeFeed();
    policyFeed.publish(await store.policyRevision());
    // On a failed start too: a blocking policy list must not hold the shutdown.
    started.push(() => policyFeed.close());
    const policies = new PolicyService({
      store,
      log,
      changed: (change) => {
        push.changed(change);
        store.policyRevision().then((revision) => policyFeed.publish(revision)).catch((error) =>
          log.error("Cannot read the policy revision", { error })
        );
      },
      preview: (set) => push.preview(set),
    });
    const identity = new IdentityService(store, authority, joinTokens, {
      clock,
      log,
      leafTtlMs: config.leafTtl,
      currentLeafTtlMs: () => {
        const ttl = push.meshConfig()?.spec.certificates?.ttl;
        return ttl === undefined ? undefined : durationMs(ttl);
      },
      renewRatePerSecond: config.renewRate,
      // At least one token, or a rate below 0.5/s could never grant a renewal.
      renewBurst: Math.max(1, 2 * config.renewRate),
      liveNodes: () => Promise.resolve(registry.aliveNodes()),
      // Replicas: the leader moves a rotation on, counting bundles fetched from any replica.
      shareBundleFetches: store.log !== undefined,
    });
    identity.events = {
      issued: (kind, node) => {
        metrics.certificatesIssued.inc({ kind });
        // An enrolment may give the node another identity, which its peers check.
        if (kind === "enrol") push.changed(meshChange({ nodes: [node] }));
      },
      refused: (kind, reason) => metrics.certificatesRefused.inc({ kind, reason }),
      tokenUsed: () => metrics.joinTokens.inc({ result: "used" }),
      tokenRefused: () => metrics.joinTokens.inc({ result: "refused" }),
    };
    await identity.start();

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
        return {
          node: principal.node,
          identity: principal.identity,
          kind: proxyKind(node),
          ...(hasCertificateProvider(node) ? { mtls: true } : {}),
        };
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
    const adsServers = plainAds ? [ads, plainAds] : [ads];
    // Started before the API listens, so a policy write or dry run always finds a first build.
    await push.start(adsServers);
    const unsubscribe = registry.subscribe((change) => push.changed(change));
    started.push(() => {
      unsubscribe();
      push.stop();
    });
    const follower = store.log
      ? followReplicas(store.log, logStart, {
        store,
        registry,
        policyFeed,
        push,
        tokens,
        identity,
        authority,
        log,
      })
      : null;
    started.push(() => follower?.stop());

    let advertise: string[] = config.advertise;
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
      explainProxy: (id) => Promise.resolve(push.explain(id)),
      stopping: () => stopping,
      install: installSource(),
      leader: () => elector.status(),
    });
    // The same limits on every port: HTTP (`api/connection_guard.ts`) and gRPC (`xds/grpc_listener.ts`).
    const limits = connectionLimits(config);
    const http = await listenPlain(parseHostPort(config.httpAddr) as HostPort, app.fetch, limits)
      .catch((error) => {
        throw new UnavailableError(
          `Cannot listen on --http-addr ${config.httpAddr}: ${error.message}`,
        );
      });
    started.push(() => http.stop());

    const httpsAddr = parseHostPort(config.httpsAddr) as HostPort;
    const serverCert = () => issueServingCertificate(authority, config, httpsAddr);
    const grpcCerts = new MeshCertificates(await serverCert());
    const tls = await listenTls(httpsAddr, await serverCert(), app.fetch, limits).catch((error) => {
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
    // The events that reach the listeners, now that they exist.
    identity.events.revoked = (nodes) => {
      for (const node of nodes) {
        tls.closeNode(node);
        ads.closeNode(node);
      }
      // Peers stop accepting a revoked node's identity.
      push.changed(meshChange({ nodes }));
    };
    identity.events.trustChanged = () => {
      reloadTls("trust changed");
      push.changed(meshChange({ trust: true }));
    };
    const timers = [
      setInterval(
        () => reloadTls("serving certificate renewal"),
        Math.max(1_000, config.leafTtl / 2),
      ),
      // Singleton duties: only the leader takes a rotation's next step or renews the intermediate;
      // the other replicas load the result through the revision log (`replica_feed.ts`).
      setInterval(() => {
        if (!elector.leading) return;
        identity.advanceRotation().catch((error) =>
          log.error("Root rotation step failed", { error })
        );
      }, ROTATION_TICK_MS),
      setInterval(() => {
        if (!elector.leading) return;
        authority.maintain().then((report) => {
          if (report.renewed) reloadTls("intermediate renewed");
          if (report.warning) log.warn(report.warning);
        }).catch((error) => log.error("CA maintenance failed", { error }));
      }, MAINTENANCE_MS),
    ];
    started.push(() => timers.forEach(clearInterval));

    const grpc = await startGrpcServer(parseHostPort(config.grpcAddr) as HostPort, {
      isServing: () => !stopping,
      ads,
      tls: grpcCerts,
      limits,
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
        limits,
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
        processMetrics.stop();
        // Wake blocking queries and event streams first, or shutdown would wait for them.
        registry.feed.close();
        policyFeed.close();
        await Promise.all([http.stop(), tls.stop()]);
        await follower?.stop();
        await elector.stop();
        push.stop();
        // Proxies hold their streams open; end them so the gRPC ports can close.
        for (const server of adsServers) server.closeAll();
        await Promise.all([grpc.stop(), plainXds?.stop()]);
        await registry.stop();
        authority.close();
        await store.close();
        // Still holding the directory's lock, so this server.json is the one this process wrote.
        await Deno.remove(`${config.dataDir}/server.json`).catch(() => {});
        claim.release();
      },
    };
  } catch (error) {
    await unwind();
    throw dataDirError(error, config.dataDir);
  }
}
