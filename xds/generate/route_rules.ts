/**
 * TrafficRoute and MeshConfig's defaults in Envoy terms: the ordered routes
 * of a service port's route configuration, and every cluster they send or
 * mirror to. The TrafficRoute is found by the shared match step
 * (`core/policy/match.ts`).
 *
 * Sidecars get everything. Proxyless clients get what grpc-js-xds 1.14
 * acts on, in the form it reads (see `resolver-xds.js`, `route.js`,
 * `route-config-resource-type.js` in `@grpc/grpc-js-xds`):
 *
 * - The timeout goes in `max_stream_duration.max_stream_duration`; gRPC
 *   ignores the route's `timeout`.
 * - Retries fire on gRPC status names only: the HTTP conditions that reach
 *   a gRPC client as UNAVAILABLE (`5xx`, `gateway-error`, `reset`,
 *   `connect-failure`, `refused-stream`) become `unavailable`, and
 *   `per_try_timeout`, which gRPC ignores, is left out.
 * - A redirect action NACKs the whole route configuration, so a redirect
 *   rule becomes an abort at 100% with the redirect's status: what a gRPC
 *   caller behind a sidecar sees of a redirect (UNKNOWN).
 * - gRPC calls are POSTs without a query string: a method match that
 *   includes POST and a query match on an absent parameter always hold and
 *   are left out; any other method or query match never holds, so the match
 *   entry is left out (gRPC ignores `query_parameters` and would match too
 *   much), and the rule with it when it has no other entry.
 * - Mirrors, header changes and rewrites, which gRPC ignores, are left out.
 */
import { trafficRouteFor } from "../../core/policy/match.ts";
import {
  durationMs,
  type Fault,
  matchEntries,
  type Retries,
  type RouteMatch,
  type RouteRule,
  type StringMatch,
  type ValueMatch,
} from "../../core/policy/model.ts";
import {
  type ClusterTarget,
  clusterTarget,
  hashPolicies,
  type ProxyKind,
  trafficSettings,
} from "./destination.ts";
import {
  anyOf,
  duration,
  escapeRegex,
  FAULT_FILTER,
  fractionalPercent,
  headerToSet,
  methodMatcher,
  regexMatcher,
  stringMatcher,
  TYPE,
} from "./envoy.ts";
import type { JsonObject, JsonValue, MeshService, MeshServicePort } from "./model.ts";
import { serviceKey, sortedPorts } from "./push_context.ts";
import type { PushContext } from "./push_context.ts";
import { isHttp, usesHttp2 } from "./resources.ts";

/** The routes of a service port, and the clusters they use. */
export interface RoutePlan {
  /** In order; the last one matches every request. */
  routes: JsonObject[];
  /** Every cluster a route sends or mirrors to, the port's own first; names may repeat. */
  clusters: ClusterTarget[];
}

/** What a policy means when it names no retry condition. */
const DEFAULT_RETRY_ON = ["connect-failure", "refused-stream", "unavailable", "cancelled", "5xx"];

/** The retry conditions grpc-js-xds knows: gRPC status names. */
const GRPC_RETRY_ON = [
  "cancelled",
  "deadline-exceeded",
  "internal",
  "resource-exhausted",
  "unavailable",
];

/** HTTP retry conditions whose failures reach a gRPC client as UNAVAILABLE. */
const UNAVAILABLE_CAUSES = ["5xx", "gateway-error", "reset", "connect-failure", "refused-stream"];

/** Envoy's names of the redirect codes a policy may ask for; 301 is the default. */
const REDIRECT_CODES: Readonly<Record<number, string>> = {
  302: "FOUND",
  303: "SEE_OTHER",
  307: "TEMPORARY_REDIRECT",
  308: "PERMANENT_REDIRECT",
};

/** What compiling one service port's rules needs. */
interface PlanContext {
  push: PushContext;
  service: MeshService;
  port: MeshServicePort;
  kind: ProxyKind;
  /** The whole port's cluster: where a rule without a split sends. */
  own: ClusterTarget;
  /** Collects every cluster the routes name. */
  clusters: ClusterTarget[];
}

/**
 * The routes a proxy of `kind` gets for `service`'s `port`: one per match
 * entry that can match of each TrafficRoute rule (in the rules' and the
 * entries' order, each with its rule's action, as Istio compiles a
 * VirtualService's `match` list), then, unless a route already matches
 * everything, a catch-all to the whole port. Routes without a timeout or
 * retries of their own get MeshConfig's defaults.
 */
export function routePlan(
  push: PushContext,
  service: MeshService,
  port: MeshServicePort,
  kind: ProxyKind,
): RoutePlan {
  const own = clusterTarget(push, service.namespace, service.name, port.port, "");
  const ctx: PlanContext = { push, service, port, kind, own, clusters: [own] };
  const policy = trafficRouteFor(push.policies, service.namespace, service.name);
  const rules = policy && (policy.spec.port ?? port.port) === port.port ? policy.spec.rules : [];
  const routes: JsonObject[] = [];
  for (const rule of rules) routes.push(...compileRule(ctx, rule));
  if (!routes.some(isCatchAll)) {
    routes.push({
      match: { prefix: catchAllPrefix(kind) },
      route: forwardAction(ctx, [{ cluster: own, weight: 100 }], {}),
    });
  }
  return { routes, clusters: ctx.clusters };
}

/**
 * The prefix of a route that matches every path: `/` for sidecars, and `""`
 * for proxyless clients, whose routes always had it (every gRPC path starts
 * with `/` too).
 */
function catchAllPrefix(kind: ProxyKind): string {
  return kind === "sidecar" ? "/" : "";
}

function isCatchAll(route: JsonObject): boolean {
  const match = route["match"] as JsonObject;
  const keys = Object.keys(match);
  return keys.length === 1 && (match["prefix"] === "/" || match["prefix"] === "");
}

/** A rule's routes: one per match entry that can match, each with the rule's name and action. */
function compileRule(ctx: PlanContext, rule: RouteRule): JsonObject[] {
  return matchEntries(rule.match).flatMap((entry) => {
    const match = routeMatch(entry, ctx.kind);
    // Before the action: an entry that cannot match names no cluster.
    if (match === undefined) return [];
    return [{
      ...(rule.name !== undefined ? { name: rule.name } : {}),
      match,
      ...ruleAction(ctx, rule, entry.path),
    }];
  });
}

/**
 * What a rule's route for one match entry does once matched: everything of
 * a route but its name and match. The entry's path match decides how a
 * rewrite is written ({@link pathRewrite}).
 */
function ruleAction(ctx: PlanContext, rule: RouteRule, path: StringMatch | undefined): JsonObject {
  if (rule.redirect && ctx.kind === "proxyless") {
    const abort = { httpStatus: rule.redirect.code ?? 301, percent: 100 };
    return {
      route: { cluster: ctx.own.name },
      typed_per_filter_config: faultConfig({ ...rule.fault, abort }),
    };
  }
  const action: JsonObject = rule.redirect
    ? { redirect: redirectAction(rule.redirect, rule.rewrite, path) }
    : { route: forwardAction(ctx, destinations(ctx, rule), rule, path) };
  return {
    ...action,
    ...(ctx.kind === "sidecar" ? headerChanges(rule) : {}),
    ...(rule.fault ? { typed_per_filter_config: faultConfig(rule.fault) } : {}),
  };
}

/**
 * One TrafficRoute match entry (or a RateLimit route's match) as an Envoy
 * RouteMatch, or `undefined` when it can never match a request of a proxy
 * of `kind` (see the module doc).
 */
export function routeMatch(match: RouteMatch | undefined, kind: ProxyKind): JsonObject | undefined {
  const path = match?.path;
  const pathSpecifier: JsonObject = path?.exact !== undefined
    ? { path: path.exact }
    : path?.prefix !== undefined
    ? { prefix: path.prefix }
    : path?.regex !== undefined
    ? { safe_regex: regexMatcher(path.regex) }
    : { prefix: catchAllPrefix(kind) };
  const headers: JsonObject[] = [];
  const query: JsonObject[] = [];
  if (match?.methods) {
    if (kind === "sidecar") headers.push(methodMatcher(match.methods));
    else if (!match.methods.includes("POST")) return undefined;
  }
  for (const [name, value] of Object.entries(match?.headers ?? {})) {
    headers.push(headerMatcher(name, value));
  }
  for (const [name, value] of Object.entries(match?.query ?? {})) {
    if (kind === "proxyless") {
      if (value.present === false) continue;
      return undefined;
    }
    if (value.present === false) headers.push(queryParameterAbsent(name));
    else {
      query.push(
        value.present === true ? { name, present_match: true } : {
          name,
          string_match: stringMatcher(value),
        },
      );
    }
  }
  return {
    ...pathSpecifier,
    ...(headers.length > 0 ? { headers } : {}),
    ...(query.length > 0 ? { query_parameters: query } : {}),
  };
}

/**
 * A header match. Absence is presence inverted: `present_match: false`
 * means absence only in recent Envoy versions, and nothing to grpc-js-xds.
 */
function headerMatcher(name: string, value: ValueMatch): JsonObject {
  if (value.present !== undefined) {
    return { name, present_match: true, ...(value.present ? {} : { invert_match: true }) };
  }
  return { name, string_match: stringMatcher(value) };
}

/**
 * Envoy's query parameter matcher cannot ask for absence, so absence is a
 * `:path` that does not carry the parameter.
 */
function queryParameterAbsent(name: string): JsonObject {
  const param = escapeRegex(name);
  return {
    name: ":path",
    string_match: { safe_regex: regexMatcher(`[^?]*\\?(?:[^&]*&)*${param}(?:=[^&]*)?(?:&.*)?`) },
    invert_match: true,
  };
}

interface WeightedCluster {
  cluster: ClusterTarget;
  weight: number;
}

function destinations(ctx: PlanContext, rule: RouteRule): WeightedCluster[] {
  if (!rule.split) return [{ cluster: ctx.own, weight: 100 }];
  return rule.split.map((entry) => ({
    cluster: destinationCluster(ctx, entry),
    weight: entry.weight,
  }));
}

/**
 * The cluster of a split or mirror destination. Another service is reached
 * on its port of the same number, else on its lowest port of the route's
 * protocol, else on its lowest port the proxy can route to (HTTP for a
 * sidecar, HTTP/2 for a gRPC client); a service the registry does not know
 * keeps the route's port number, and its cluster has no endpoints.
 */
function destinationCluster(
  ctx: PlanContext,
  dest: {
    service?: string | undefined;
    namespace?: string | undefined;
    subset?: string | undefined;
  },
): ClusterTarget {
  const namespace = dest.namespace ?? ctx.service.namespace;
  const name = dest.service ?? ctx.service.name;
  let port = ctx.port.port;
  const other = ctx.push.serviceByKey.get(serviceKey(name, namespace));
  if (other && (name !== ctx.service.name || namespace !== ctx.service.namespace)) {
    const fits = ctx.kind === "sidecar" ? isHttp : usesHttp2;
    const ports = sortedPorts(other).filter((p) => fits(p.protocol));
    const chosen = ports.find((p) => p.port === port) ??
      ports.find((p) => p.protocol === ctx.port.protocol) ?? ports[0];
    port = chosen?.port ?? port;
  }
  const target = clusterTarget(ctx.push, namespace, name, port, dest.subset ?? "");
  ctx.clusters.push(target);
  return target;
}

/** A RouteAction that forwards to `weighted` (one cluster, or a weighted split). */
function forwardAction(
  ctx: PlanContext,
  weighted: readonly WeightedCluster[],
  rule: Pick<RouteRule, "timeout" | "retries" | "mirror" | "rewrite">,
  path?: StringMatch,
): JsonObject {
  const defaults = ctx.push.mesh.defaults;
  const clusterSpecifier: JsonObject = weighted.length === 1
    ? { cluster: weighted[0]!.cluster.name }
    : {
      weighted_clusters: {
        clusters: weighted.map((w) => ({ name: w.cluster.name, weight: w.weight })),
      },
    };
  const sidecarOnly: JsonObject = ctx.kind === "sidecar"
    ? {
      ...(rule.mirror
        ? {
          request_mirror_policies: [{
            cluster: destinationCluster(ctx, rule.mirror).name,
            ...(rule.mirror.percent !== undefined
              ? { runtime_fraction: { default_value: fractionalPercent(rule.mirror.percent) } }
              : {}),
          }],
        }
        : {}),
      ...(rule.rewrite?.prefix !== undefined ? pathRewrite(rule.rewrite.prefix, path) : {}),
      ...(rule.rewrite?.host !== undefined ? { host_rewrite_literal: rule.rewrite.host } : {}),
    }
    : {};
  const hash = routeHashPolicies(ctx, weighted);
  // A gRPC call may be a stream that lives for hours: MeshConfig's default timeout is for
  // requests, so gRPC ports get none unless their rule sets one (Istio's route timeout is 0).
  const grpc = ctx.port.protocol === "grpc";
  return {
    ...clusterSpecifier,
    ...timeoutFields(rule.timeout ?? (grpc ? undefined : defaults?.timeout), ctx.kind, grpc),
    ...retryFields(rule.retries ?? defaults?.retries, ctx.kind),
    ...(hash.length > 0 ? { hash_policy: hash } : {}),
    ...sidecarOnly,
  };
}

/**
 * A route has one hash for all its clusters: that of the first destination
 * whose load balancer hashes (a split between subsets that hash on
 * different keys cannot honour both).
 */
function routeHashPolicies(ctx: PlanContext, weighted: readonly WeightedCluster[]): JsonObject[] {
  for (const { cluster: c } of weighted) {
    const settings = trafficSettings(ctx.push, c.namespace, c.service, c.port, c.subset);
    const hash = hashPolicies(settings.loadBalancer, ctx.kind);
    if (hash.length > 0) return hash;
  }
  return [];
}

/**
 * The request timeout. Without one, a sidecar's route timeout is off
 * (Envoy's default 15 s would cut gRPC streams and long polls short) and a
 * proxyless call keeps the deadline its caller set. A sidecar's gRPC route
 * also honours the caller's deadline (the `grpc-timeout` header), capped
 * by the route's timeout when there is one (`grpc_timeout_header_max`, 0:
 * no cap; RouteAction.MaxStreamDuration in
 * api/envoy/config/route/v3/route_components.proto), as Istio's
 * `max_grpc_timeout` does.
 */
function timeoutFields(text: string | undefined, kind: ProxyKind, grpc: boolean): JsonObject {
  const ms = text === undefined ? 0 : durationMs(text);
  if (kind === "sidecar") {
    return {
      timeout: duration(ms),
      ...(grpc ? { max_stream_duration: { grpc_timeout_header_max: duration(ms) } } : {}),
    };
  }
  if (text === undefined) return {};
  return { max_stream_duration: { max_stream_duration: duration(ms) } };
}

/**
 * How many other hosts a retry tries before it settles for one it already
 * tried: Istio's value.
 */
const HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5;

/**
 * Retries go to a host not tried yet, as in Istio: without the predicate a
 * retry may land on the host that just failed, and with RING_HASH or
 * MAGLEV it always does (the same key hashes to the same host).
 */
function previousHostsPredicate(): JsonObject {
  return {
    retry_host_predicate: [{
      name: "envoy.retry_host_predicates.previous_hosts",
      typed_config: anyOf(TYPE.previousHosts, {}),
    }],
    host_selection_retry_max_attempts: HOST_SELECTION_RETRY_MAX_ATTEMPTS,
  };
}

function retryFields(retries: Retries | undefined, kind: ProxyKind): JsonObject {
  // No retry policy is no retry; gRPC also refuses `num_retries: 0`.
  if (!retries || retries.attempts === 0) return {};
  const on = retries.on ?? DEFAULT_RETRY_ON;
  if (kind === "sidecar") {
    return {
      retry_policy: {
        retry_on: on.join(","),
        num_retries: retries.attempts,
        ...(retries.perTryTimeout !== undefined
          ? { per_try_timeout: duration(durationMs(retries.perTryTimeout)) }
          : {}),
        ...previousHostsPredicate(),
      },
    };
  }
  const grpcOn = GRPC_RETRY_ON.filter((code) =>
    on.includes(code as typeof on[number]) ||
    (code === "unavailable" && on.some((o) => UNAVAILABLE_CAUSES.includes(o)))
  );
  if (grpcOn.length === 0) return {};
  return { retry_policy: { retry_on: grpcOn.join(","), num_retries: retries.attempts } };
}

/**
 * A redirect. A rewrite beside it says where the redirect leads: its prefix
 * replaces the matched one unless the redirect names a whole path, and its
 * host stands in for a redirect host.
 */
function redirectAction(
  redirect: NonNullable<RouteRule["redirect"]>,
  rewrite: RouteRule["rewrite"],
  path: StringMatch | undefined,
): JsonObject {
  const host = redirect.host ?? rewrite?.host;
  const code = REDIRECT_CODES[redirect.code ?? 301];
  return {
    ...(redirect.scheme !== undefined ? { scheme_redirect: redirect.scheme } : {}),
    ...(host !== undefined ? { host_redirect: host } : {}),
    ...(redirect.port !== undefined ? { port_redirect: redirect.port } : {}),
    ...(redirect.path !== undefined
      ? { path_redirect: redirect.path }
      : rewrite?.prefix !== undefined
      ? pathRewrite(rewrite.prefix, path)
      : {}),
    ...(code !== undefined ? { response_code: code } : {}),
  };
}

/**
 * A rule's `rewrite.prefix` for a route whose path matched by `path`.
 * Envoy's `prefix_rewrite` swaps "the matched prefix (or path)" (RouteAction
 * in api/envoy/config/route/v3/route_components.proto): what we document
 * for a prefix match, and the whole path for an exact one. After a regex
 * match it would swap whatever prefix the route's matcher reports, so the
 * regex itself becomes a `regex_rewrite` of the whole path, anchored because
 * Envoy substitutes every match of the pattern (RE2 GlobalReplace) while
 * the route matched the whole path; `\1` in the substitution names the
 * regex's groups. Validation refuses `rewrite.prefix` without a path match:
 * Envoy would put it before the whole path (`/foo` → `/v2/searchfoo`).
 */
function pathRewrite(prefix: string, path: StringMatch | undefined): JsonObject {
  if (path?.regex !== undefined) {
    return {
      regex_rewrite: { pattern: regexMatcher(`^(?:${path.regex})$`), substitution: prefix },
    };
  }
  return { prefix_rewrite: prefix };
}

/** Header changes; every header added replaces the value it had. */
function headerChanges({ requestHeaders: req, responseHeaders: res }: RouteRule): JsonObject {
  const set = (add: Record<string, string> | undefined) =>
    Object.entries(add ?? {}).map(([k, v]) => headerToSet(k, v));
  const lists: [string, JsonValue[]][] = [
    ["request_headers_to_add", set(req?.add)],
    ["request_headers_to_remove", [...req?.remove ?? []]],
    ["response_headers_to_add", set(res?.add)],
    ["response_headers_to_remove", [...res?.remove ?? []]],
  ];
  return Object.fromEntries(lists.filter(([, list]) => list.length > 0));
}

/** Validation lets an abort through with exactly one status; gRPC's wins should both come. */
function abortStatus(abort: NonNullable<Fault["abort"]>): JsonObject {
  if (abort.grpcStatus !== undefined) return { grpc_status: abort.grpcStatus };
  if (abort.httpStatus !== undefined) return { http_status: abort.httpStatus };
  throw new Error("Invalid fault: an abort needs httpStatus or grpcStatus");
}

/** A route's fault, as the fault filter's per-route configuration. */
function faultConfig({ delay, abort }: Fault): JsonObject {
  return {
    [FAULT_FILTER]: anyOf(TYPE.fault, {
      ...(delay
        ? {
          delay: {
            fixed_delay: duration(durationMs(delay.fixed)),
            percentage: fractionalPercent(delay.percent),
          },
        }
        : {}),
      ...(abort
        ? { abort: { ...abortStatus(abort), percentage: fractionalPercent(abort.percent) } }
        : {}),
    }),
  };
}
