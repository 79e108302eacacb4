/**
 * RateLimit in Envoy terms: local rate limiting on a sidecar's inbound HTTP
 * listener, one token bucket per route of the listener's route
 * configuration (RDS `inbound|<inboundPort>`, shared by its filter chains),
 * kept by each instance's sidecar on its own. The policy comes from the
 * shared match step (`core/policy/match.ts`).
 *
 * The filter itself carries no bucket, so it limits nothing by itself;
 * each route that a RateLimit route matches carries that route's bucket,
 * and the final catch-all carries the service-wide one, if any.
 */
import { rateLimitFor } from "../../core/policy/match.ts";
import { type Bucket, durationMs, type RateLimitSpec } from "../../core/policy/model.ts";
import { anyOf, duration, headerToSet, statusCodeName, TYPE } from "./envoy.ts";
import type { InboundEntry, JsonObject } from "./model.ts";
import type { PushContext } from "./push_context.ts";
import { routeMatch } from "./route_rules.ts";

/** The filter's name: routes configure it under this key of `typed_per_filter_config`. */
export const LOCAL_RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit";

/** The stat prefix of the filter itself, which holds no bucket and so counts nothing. */
const STAT_PREFIX = "http_local_rate_limiter";

/**
 * The stat prefix of one bucket: Envoy counts each per-route configuration
 * under its own `stat_prefix` (`<prefix>.http_local_rate_limit.rate_limited`),
 * so each route's bucket gets the listener's and the route's name, or its
 * position, and the catch-all `service`. Characters other than letters,
 * digits, `_` and `-` become `_`: a `.` would split the stat name.
 */
function bucketStatPrefix(entry: InboundEntry, route: string): string {
  return `inbound_${entry.inboundPort}_rate_limit_${route.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** Envoy refuses a token bucket that refills more often than this. */
const MIN_FILL_INTERVAL_MS = 50;

/** The HTTP filters and routes an inbound listener gets from a service's RateLimit. */
export interface InboundRateLimit {
  /** The local rate limit filter, or none when no RateLimit applies. */
  filters: JsonObject[];
  /** The routes to the app, in order; the last matches everything. */
  routes: JsonObject[];
}

/**
 * A bucket as the filter's per-route configuration. A `per` under 50 ms is
 * stretched to 50 ms with proportionally more tokens per fill, keeping the
 * rate, because Envoy refuses a shorter fill interval.
 */
function bucketConfig(spec: RateLimitSpec, bucket: Bucket, statPrefix: string): JsonObject {
  const perMs = durationMs(bucket.per);
  const scale = Math.max(1, MIN_FILL_INTERVAL_MS / perMs);
  const tokensPerFill = Math.round(bucket.requests * scale);
  // Codes outside Envoy's StatusCode enum cannot be sent; Envoy's default, 429, answers instead.
  const status = spec.response?.status === undefined
    ? undefined
    : statusCodeName(spec.response.status);
  const headers = Object.entries(spec.response?.headers ?? {}).map(([k, v]) => headerToSet(k, v));
  return anyOf(TYPE.localRateLimit, {
    stat_prefix: statPrefix,
    ...(status !== undefined ? { status: { code: status } } : {}),
    token_bucket: {
      max_tokens: Math.max(bucket.burst ?? bucket.requests, tokensPerFill),
      tokens_per_fill: tokensPerFill,
      fill_interval: duration(Math.round(perMs * scale)),
    },
    filter_enabled: { default_value: { numerator: 100 } },
    filter_enforced: { default_value: { numerator: 100 } },
    ...(headers.length > 0 ? { response_headers_to_add: headers } : {}),
  });
}

/**
 * The rate limiting of an inbound HTTP listener for `entry`'s service:
 * `appRoute(match)` builds a route to the app for a RouteMatch.
 */
export function inboundRateLimit(
  push: PushContext,
  entry: InboundEntry,
  appRoute: (match: JsonObject) => JsonObject,
): InboundRateLimit {
  const catchAll = { prefix: "/" };
  const spec = rateLimitFor(push.policies, entry.namespace, entry.service)?.spec;
  if (!spec) return { filters: [], routes: [appRoute(catchAll)] };
  const limited = (route: JsonObject, bucket: Bucket, statName: string): JsonObject => ({
    ...route,
    typed_per_filter_config: {
      [LOCAL_RATE_LIMIT_FILTER]: bucketConfig(spec, bucket, bucketStatPrefix(entry, statName)),
    },
  });
  const routes = (spec.routes ?? []).map((r, i) =>
    limited(
      {
        ...(r.name !== undefined ? { name: r.name } : {}),
        // A sidecar can match everything a RateLimit route matches.
        ...appRoute(routeMatch(r.match, "sidecar")!),
      },
      r.limit,
      r.name ?? `route_${i}`,
    )
  );
  const last = appRoute(catchAll);
  routes.push(spec.limit ? limited(last, spec.limit, "service") : last);
  return {
    filters: [{
      name: LOCAL_RATE_LIMIT_FILTER,
      typed_config: anyOf(TYPE.localRateLimit, { stat_prefix: STAT_PREFIX }),
    }],
    routes,
  };
}
