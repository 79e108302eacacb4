/**
 * The REST API: one sub-app per resource (`resources.ts`), mounted with
 * `app.route()`, behind the middleware every request goes through (metrics
 * and the request log, problem rendering). Each route's authentication,
 * authorization and body limit come from its declaration (`operation.ts`).
 */
import { type Context, Hono } from "hono";
import type { TokenService } from "../auth/tokens.ts";
import type { CertificatePrincipal, IdentityService } from "../ca/identity.ts";
import type { Logger } from "../core/log.ts";
import type { ProxyPolicies } from "../core/policy/match.ts";
import type { ProxyStatus } from "../core/proxy_status.ts";
import type { PolicyService } from "../policy/service.ts";
import type { ChangeFeed } from "../registry/feed.ts";
import type { Registry } from "../registry/registry.ts";
import type { Store } from "../store/store.ts";
import type { LeaderStatus } from "../store/leader_elector.ts";
import { authentication } from "./authenticate.ts";
import { limitBody } from "./body_limit.ts";
import { measure } from "./measure.ts";
import type { Metrics } from "./metrics.ts";
import type { InstallSource } from "./install.ts";
import { HEARTBEAT_ROUTE } from "./nodes.ts";
import type { OpenApiDocument } from "./openapi.ts";
import { type ApiEnv, type ResourceApp, resourceApps } from "./operation.ts";
import { renderErrors } from "./problem.ts";
import { openApiDocument, RESOURCES } from "./resources.ts";

export type { Caller } from "./operation.ts";

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
  /** What a new host installs from this server (`/install.sh`, `/install/…`); none: 404. */
  install?: InstallSource;
  /** True once shutdown began: `/readyz` turns 503 so load balancers drain us. */
  stopping?: () => boolean;
  /** Which replica runs the singleton duties. */
  leader: () => LeaderStatus;
}

/** Largest accepted request body. A registration of 256 instances is well under it. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** What each resource's sub-app is built with. */
export interface ApiContext {
  deps: AppDeps;
  /** Builds a resource's sub-app from its handlers, behind the middleware its routes declare. */
  resourceApp: ResourceApp;
  /** The certificate the TLS peer proved, `null` when none; throws a 401 when it is not good. */
  certificateOf(c: Context): CertificatePrincipal | null;
  /** The OpenAPI document of the API. */
  document(): OpenApiDocument;
}

/**
 * The REST API. Handlers are thin: parse and validate, call the registry or
 * token service, render; who may call was checked from the declaration. Every error leaves through `onError` as
 * `application/problem+json`.
 */
export function createApp(deps: AppDeps): Hono<ApiEnv> {
  const { authenticate, certificateOf } = authentication(deps);
  const limit = limitBody({ maxBytes: MAX_BODY_BYTES });
  const context: ApiContext = {
    deps,
    resourceApp: resourceApps({ authenticate, limitBody: limit }),
    certificateOf,
    document: openApiDocument,
  };
  const app = new Hono<ApiEnv>();
  app.use(measure({ metrics: deps.metrics, log: deps.log, quietRoutes: [HEARTBEAT_ROUTE] }));
  const errors = renderErrors({ log: deps.log });
  app.onError(errors.onError);
  app.notFound(errors.notFound);
  for (const resource of RESOURCES) app.route(resource.declared.prefix, resource.app(context));
  // Reached only when no route answered: a caller without credentials learns nothing of /v1.
  app.use("/v1/*", limit, authenticate);
  return app;
}
