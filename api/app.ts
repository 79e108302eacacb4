import { type Context, Hono } from "hono";
import { TLSSocket } from "node:tls";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { authorize, type Principal, type TokenService } from "../auth/tokens.ts";
import { formatDuration } from "../core/duration.ts";
import {
  ForbiddenError,
  InvalidError,
  NotFoundError,
  TooLargeError,
  UnauthorizedError,
  UnavailableError,
} from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { CertificatePrincipal, IdentityService } from "../ca/identity.ts";
import type { ProxyStatus } from "../core/proxy_status.ts";
import type { ProxyPolicies } from "../core/policy/match.ts";
import type { PolicyService } from "../policy/service.ts";
import {
  drainPatchSchema,
  enrolRequestSchema,
  heartbeatSchema,
  nodeRegistrationSchema,
  renewRequestSchema,
  servicePutSchema,
  tokenCreateSchema,
} from "../core/model.ts";
import { VERSION } from "../core/version.ts";
import type { ChangeFeed } from "../registry/feed.ts";
import type { Registry } from "../registry/registry.ts";
import type { Store } from "../store/store.ts";
import { docsPage } from "./docs_page.ts";
import type { Metrics } from "./metrics.ts";
import { openApiDocument } from "./openapi.ts";
import { policyRoutes } from "./policies.ts";
import { problemResponse, toProblem } from "./problem.ts";
import {
  encodeCursor,
  etag,
  type ListRequest,
  pathInstanceId,
  pathName,
  readBody,
  readListQuery,
  readPreconditions,
} from "./request.ts";

/** What the HTTP API needs from the rest of the server. */
export interface AppDeps {
  identity: IdentityService;
  /** Addresses agents enrol with, written into join tokens. */
  advertise: () => string[];
  registry: Registry;
  tokens: TokenService;
  store: Store;
  metrics: Metrics;
  log: Logger;
  /** Every connected xDS proxy with its per-type sync state. */
  proxies: () => ProxyStatus[];
  /** What was last sent to a proxy, or `null` when it is not connected. */
  configDump: (id: string) => Record<string, unknown[]> | null;
  /** Policy reads and writes. */
  policies: PolicyService;
  /** The policy revision, published after every policy write: blocking policy lists wait on it. */
  policyFeed: ChangeFeed;
  /** The policies that apply to a connected proxy (by stream id) or a node's sidecar, or `null`. */
  explainProxy: (id: string) => Promise<ProxyPolicies | null>;
  /** Takes an online backup (the archive of `store/backup.ts`). */
  backup: () => Promise<Uint8Array>;
  /** True once shutdown began: `/readyz` turns 503 so load balancers drain us. */
  stopping?: () => boolean;
}

/** Largest accepted request body. A registration of 256 instances is well under it. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** A caller: a token's principal, plus the mesh certificate it proved over mTLS, if any. */
export type Caller = Principal & { certificate?: CertificatePrincipal };

type Env = { Variables: { principal: Caller } };

/**
 * The REST API. Handlers are thin: parse and validate, authorise, call the
 * registry or token service, render. Every error leaves through `onError` as
 * `application/problem+json`.
 */
export function createApp(deps: AppDeps): Hono<Env> {
  const { registry, tokens, metrics, log, identity } = deps;
  const peers = new WeakMap<object, CertificatePrincipal | Error>();

  /**
   * The certificate the TLS peer presented, checked once per connection
   * (chain, shape) and on every request (deny list, expiry), so a revocation
   * takes effect on the very next request. `null` when there is none.
   */
  function certificateOf(c: Context<Env>): CertificatePrincipal | null {
    const socket = tlsSocketOf(c.env);
    if (!socket) return null;
    let known = peers.get(socket);
    if (known === undefined) {
      const peer = socket.getPeerCertificate(true);
      if (!peer || Object.keys(peer).length === 0) return null;
      try {
        known = identity.authenticate(socket.authorized, socket.authorizationError, peer);
      } catch (error) {
        known = error as Error;
      }
      peers.set(socket, known);
    }
    if (known instanceof Error) throw known;
    if (identity.isRevoked(known.serial)) {
      throw new UnauthorizedError(`Client certificate ${known.serial} has been revoked`);
    }
    if (Date.parse(known.notAfter) <= Date.now()) {
      throw new UnauthorizedError(
        "Client certificate has expired: an expired certificate cannot renew itself; re-enrol the host with a new join token",
      );
    }
    return known;
  }
  const app = new Hono<Env>();

  // Labelled metric children, cached: looking labels up per request was a measurable share of
  // a heartbeat's cost at 20,000/s. Routes are patterns, so the set stays small.
  const counters = new Map<string, { inc(): void }>();
  const beats = {
    changed: metrics.heartbeats.labels({ result: "changed" }),
    unchanged: metrics.heartbeats.labels({ result: "unchanged" }),
    rejected: metrics.heartbeats.labels({ result: "rejected" }),
  };
  const timers = new Map<string, { observe(v: number): void }>();
  app.use(async function measure(c, next) {
    const start = performance.now();
    await next();
    const route = c.req.routePath ?? "unmatched";
    const method = c.req.method;
    const status = c.res.status;
    const countKey = `${route} ${method} ${status}`;
    let counter = counters.get(countKey);
    if (!counter) {
      counter = metrics.httpRequests.labels({ route, method, status: String(status) });
      counters.set(countKey, counter);
    }
    counter.inc();
    const ms = performance.now() - start;
    const timeKey = `${route} ${method}`;
    let timer = timers.get(timeKey);
    if (!timer) {
      timer = metrics.httpDuration.labels({ route, method });
      timers.set(timeKey, timer);
    }
    timer.observe(ms / 1000);
    // The request log: writes and refusals at info, reads and heartbeats (the bulk) at debug.
    // Only method, path, status and timing: never a header or a body, which may hold secrets.
    const quiet = status < 400 && (method === "GET" || route === "/v1/nodes/:name/heartbeat");
    const level = status >= 500 ? "error" : quiet ? "debug" : "info";
    log[level]("HTTP request", { method, path: c.req.path, status, ms: Math.round(ms * 10) / 10 });
  });

  app.onError((error, c) => {
    const problem = toProblem(error, c.req.path);
    if (problem.status >= 500 && problem.status !== 503) {
      log.error("Request failed", {
        method: c.req.method,
        path: c.req.path,
        error: String(error),
        stack: (error as Error).stack,
      });
    }
    return problemResponse(c, problem);
  });
  app.notFound((c) =>
    problemResponse(
      c,
      toProblem(new NotFoundError(`No route for ${c.req.method} ${c.req.path}`), c.req.path),
    )
  );

  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    if (deps.stopping?.()) {
      throw new UnavailableError("The server is shutting down");
    }
    await deps.store.ping();
    return c.json({ status: "ready", store: deps.store.backend, revision: registry.feed.revision });
  });
  app.get("/metrics", async (c) => {
    return c.body(await metrics.registry.metrics(), 200, {
      "content-type": metrics.registry.contentType,
    });
  });
  app.get("/v1/version", (c) => c.json({ version: VERSION }));
  app.get("/openapi.json", (c) => c.json(openApiDocument()));
  app.get("/docs", (c) => c.html(docsPage(openApiDocument())));

  const limitBody = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw new TooLargeError(`The body exceeds ${MAX_BODY_BYTES} bytes`);
    },
  });

  // Public CA routes: registered before the authenticated /v1 app so its middleware never runs for them.
  app.get("/v1/ca/roots", (c) => {
    const bundle = identity.bundle();
    const cert = certificateOfQuietly(c);
    if (cert) identity.bundleFetched(cert.node, bundle.fingerprint);
    const format = c.req.query("format") ?? "json";
    if (format !== "json" && format !== "pem") {
      throw new InvalidError(`Invalid format "${format}": use json or pem`, [{
        in: "query",
        pointer: "/format",
        message: "Must be json or pem",
      }]);
    }
    if (format === "pem") {
      return c.body(bundle.pem, 200, { "content-type": "application/x-pem-file" });
    }
    return c.json({
      trustDomain: identity.trustDomain,
      roots: bundle.roots,
      bundlePem: bundle.pem,
      bundleFingerprint: bundle.fingerprint,
    });
  });
  app.post("/v1/ca/enrol", limitBody, async (c) => {
    const body = await readBody(c, enrolRequestSchema, "enrolment");
    return c.json(await identity.enrol(body));
  });

  function certificateOfQuietly(c: Context<Env>): CertificatePrincipal | null {
    try {
      return certificateOf(c);
    } catch {
      return null;
    }
  }

  const v1 = new Hono<Env>();
  v1.use(limitBody);
  v1.use(async function authenticate(c, next) {
    const certificate = certificateOf(c);
    if (certificate) {
      c.set("principal", {
        tokenId: `x509:${certificate.node}`,
        role: "agent",
        node: certificate.node,
        certificate,
      });
      await next();
      return;
    }
    const header = c.req.header("authorization");
    if (!header) {
      throw new UnauthorizedError(
        'Missing Authorization header: send "Authorization: Bearer <token>"',
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      throw new UnauthorizedError('Malformed Authorization header: expected "Bearer <token>"');
    }
    c.set("principal", await tokens.verify(match[1]!));
    await next();
  });

  /** Answers a list, blocking first when the caller passed `?index=`. */
  async function list<T>(
    c: Context<Env>,
    request: ListRequest,
    run: () => Promise<{ items: T[]; next: string | null; revision: number }>,
  ) {
    if (request.index !== undefined) {
      // No abort signal: Deno's request.signal also fires on success and warns on every use;
      // an abandoned wait simply ends at its (bounded) timeout.
      await registry.feed.wait(request.index, request.waitMs);
    }
    const page = await run();
    c.header("x-ironmesh-index", String(page.revision));
    return c.json({ items: page.items, next: encodeCursor(page.next) });
  }

  v1.get("/namespaces", async (c) => {
    authorize(c.get("principal"), "read");
    const items = await registry.namespaces();
    c.header("x-ironmesh-index", String(registry.feed.revision));
    return c.json({ items, next: null });
  });

  v1.get("/services", (c) => {
    authorize(c.get("principal"), "read");
    const request = readListQuery(c, ["namespace"]);
    return list(c, request, () => registry.listServices(request.filter));
  });
  v1.get("/services/:namespace/:name", async (c) => {
    authorize(c.get("principal"), "read");
    const service = await registry.getService(
      pathName(c, "namespace", "label"),
      pathName(c, "name", "label"),
    );
    c.header("etag", etag(service.revision));
    return c.json(service);
  });
  v1.put("/services/:namespace/:name", async (c) => {
    authorize(c.get("principal"), "write");
    const namespace = pathName(c, "namespace", "label");
    const name = pathName(c, "name", "label");
    const pre = readPreconditions(c);
    const body = await readBody(c, servicePutSchema, "service");
    const { service, created } = await registry.putService(namespace, name, body, pre);
    c.header("etag", etag(service.revision));
    return c.json(service, created ? 201 : 200);
  });
  v1.delete("/services/:namespace/:name", async (c) => {
    authorize(c.get("principal"), "write");
    const namespace = pathName(c, "namespace", "label");
    const name = pathName(c, "name", "label");
    await registry.deleteService(namespace, name, readPreconditions(c));
    return c.body(null, 204);
  });

  v1.get("/nodes", (c) => {
    authorize(c.get("principal"), "read");
    const request = readListQuery(c, ["status"]);
    return list(c, request, () => registry.listNodes(request.filter));
  });
  v1.get("/nodes/:name", async (c) => {
    authorize(c.get("principal"), "read");
    const node = await registry.getNode(pathName(c, "name", "subdomain"));
    c.header("etag", etag(node.revision));
    return c.json(node);
  });
  v1.patch("/nodes/:name", async (c) => {
    authorize(c.get("principal"), "write");
    const name = pathName(c, "name", "subdomain");
    const pre = readPreconditions(c);
    const body = await readBody(c, drainPatchSchema, "node patch");
    const node = await registry.drainNode(name, body.draining, pre);
    c.header("etag", etag(node.revision));
    return c.json(node);
  });
  v1.delete("/nodes/:name", async (c) => {
    const principal = c.get("principal");
    authorize(principal, "agent");
    const name = pathName(c, "name", "subdomain");
    if (principal.role === "agent") {
      // An agent leaving keeps its identity for its return.
      await registry.deregister(name, principal, readPreconditions(c));
      return c.body(null, 204);
    }
    // An operator removing a node decommissions it: its certificates are revoked even when the
    // node already left the registry (deregistered or reaped), so its identity cannot come back.
    let registered = true;
    try {
      await registry.deregister(name, principal, readPreconditions(c));
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      registered = false;
    }
    const revoked = await identity.decommission(name);
    if (!registered && revoked.length === 0) throw new NotFoundError(`Node "${name}" is not known`);
    return c.body(null, 204);
  });
  v1.put("/nodes/:name/registration", async (c) => {
    const principal = c.get("principal");
    authorize(principal, "agent");
    const name = pathName(c, "name", "subdomain");
    const body = await readBody(c, nodeRegistrationSchema, "registration");
    const result = await registry.register(name, body, principal);
    c.header("etag", etag(result.node.revision));
    return c.json(result);
  });
  v1.post("/nodes/:name/heartbeat", async (c) => {
    const principal = c.get("principal");
    try {
      authorize(principal, "agent");
      const name = pathName(c, "name", "subdomain");
      const body = await readBody(c, heartbeatSchema, "heartbeat");
      const result = await registry.heartbeat(name, body, principal);
      // Reported on every heartbeat, so a restarted server knows at once who holds which bundle.
      if (principal.certificate && body.bundleFingerprint) {
        identity.bundleFetched(principal.certificate.node, body.bundleFingerprint);
      }
      (result.changed ? beats.changed : beats.unchanged).inc();
      return c.json({
        ttl: formatDuration(result.ttlMs),
        ttlMs: result.ttlMs,
        revision: registry.feed.revision,
        ...(principal.certificate ? { ca: identity.hints(principal.certificate) } : {}),
      });
    } catch (error) {
      beats.rejected.inc();
      throw error;
    }
  });

  v1.get("/instances", (c) => {
    authorize(c.get("principal"), "read");
    const request = readListQuery(c, ["namespace", "service", "node", "health"]);
    return list(c, request, () => registry.listInstances(request.filter));
  });
  v1.get("/instances/:id", async (c) => {
    authorize(c.get("principal"), "read");
    const instance = await registry.getInstance(pathInstanceId(c));
    c.header("etag", etag(instance.revision));
    return c.json(instance);
  });
  v1.patch("/instances/:id", async (c) => {
    authorize(c.get("principal"), "write");
    const id = pathInstanceId(c);
    const pre = readPreconditions(c);
    const body = await readBody(c, drainPatchSchema, "instance patch");
    const instance = await registry.drainInstance(id, body.draining, pre);
    c.header("etag", etag(instance.revision));
    return c.json(instance);
  });

  v1.get("/events", (c) => {
    authorize(c.get("principal"), "read");
    const lastId = Number(c.req.header("last-event-id") ?? -1);
    return streamSSE(c, async (stream) => {
      let sent = Number.isInteger(lastId) ? lastId : -1;
      let wake: () => void = () => {};
      const unsubscribe = registry.feed.subscribe(() => wake());
      stream.onAbort(() => wake());
      try {
        while (!stream.aborted && !stream.closed) {
          const revision = registry.feed.revision;
          if (revision !== sent) {
            await stream.writeSSE({
              event: "change",
              id: String(revision),
              data: JSON.stringify({ revision }),
            });
            sent = revision;
          }
          if (registry.feed.closed) break;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 15_000);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          if (registry.feed.revision === sent && !stream.aborted) {
            await stream.write(": keepalive\n\n");
          }
        }
      } finally {
        unsubscribe();
      }
    });
  });

  v1.get("/tokens", async (c) => {
    authorize(c.get("principal"), "admin");
    return c.json({ items: await tokens.list(), next: null });
  });
  v1.post("/tokens", async (c) => {
    authorize(c.get("principal"), "admin");
    const body = await readBody(c, tokenCreateSchema, "token");
    if (body.kind === "join") {
      const created = await identity.createJoinToken(body, deps.advertise());
      log.info("Join token created", {
        id: created.id,
        namespace: created.namespace,
        serviceAccount: created.serviceAccount,
        node: created.node,
        uses: created.uses,
      });
      return c.json(created, 201);
    }
    const created = await tokens.create(body);
    log.info("Token created", { id: created.id, role: created.role, node: created.node });
    return c.json(created, 201);
  });
  v1.get("/tokens/:id", async (c) => {
    authorize(c.get("principal"), "admin");
    return c.json(await tokens.get(c.req.param("id")));
  });
  v1.delete("/tokens/:id", async (c) => {
    authorize(c.get("principal"), "admin");
    const token = await tokens.revoke(c.req.param("id"));
    if (token.kind === "join") await identity.revokeToken(token.id);
    log.info("Token revoked", { id: token.id, kind: token.kind });
    return c.body(null, 204);
  });

  v1.get("/proxies", (c) => {
    authorize(c.get("principal"), "read");
    const items = deps.proxies().sort((a, b) => a.id.localeCompare(b.id));
    return c.json({ items, next: null });
  });
  v1.get("/proxies/:id/config_dump", (c) => {
    authorize(c.get("principal"), "read");
    const id = c.req.param("id");
    const dump = deps.configDump(id);
    if (!dump) throw new NotFoundError(`Proxy "${id}" is not connected`);
    return c.json({ id, resources: dump });
  });
  v1.get("/proxies/:id/policies", async (c) => {
    authorize(c.get("principal"), "read");
    const id = c.req.param("id");
    const explained = await deps.explainProxy(id);
    if (!explained) {
      throw new NotFoundError(`"${id}" is neither a connected proxy nor a registered node`);
    }
    return c.json(explained);
  });

  policyRoutes(v1, deps.policies, deps.policyFeed);

  v1.get("/backup", async (c) => {
    authorize(c.get("principal"), "admin");
    const archive = await deps.backup();
    log.info("Backup taken", { bytes: archive.length, revision: registry.feed.revision });
    return c.body(archive as Uint8Array<ArrayBuffer>, 200, {
      "content-type": "application/gzip",
      "content-disposition": 'attachment; filename="ironmesh-backup.json.gz"',
    });
  });

  v1.post("/ca/renew", async (c) => {
    const certificate = c.get("principal").certificate;
    if (!certificate) {
      throw new ForbiddenError(
        "Renewal is proven by the current certificate: call over mTLS with it, not with a token",
      );
    }
    const body = await readBody(c, renewRequestSchema, "renewal");
    return c.json(await identity.renew(certificate, body.csr));
  });
  v1.get("/ca/status", async (c) => {
    authorize(c.get("principal"), "read");
    return c.json(await identity.rotationStatus());
  });
  v1.post("/ca/rotation", async (c) => {
    authorize(c.get("principal"), "admin");
    await identity.startRotation();
    return c.json(await identity.rotationStatus(), 202);
  });

  app.route("/v1", v1);
  return app;
}

/** The TLS socket under a request served by `node:https`, or `null` (plain HTTP, tests). */
function tlsSocketOf(env: unknown): TLSSocket | null {
  const socket = (env as { incoming?: { socket?: unknown } } | undefined)?.incoming?.socket;
  return socket instanceof TLSSocket ? socket : null;
}
