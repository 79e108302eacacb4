/**
 * The request metrics and the request log of the REST API, as one
 * middleware: both need the route pattern and the time, taken once.
 */
import type { MiddlewareHandler } from "hono";
import type { Logger } from "../core/log.ts";
import type { Metrics } from "./metrics.ts";

/** Options of {@link measure}. */
export interface MeasureOptions {
  metrics: Metrics;
  log: Logger;
  /**
   * Routes whose successful requests are logged at debug, like reads: the
   * bulk (heartbeats) would drown the writes. Route patterns, e.g.
   * `/v1/nodes/:name/heartbeat`. None by default.
   */
  quietRoutes?: readonly string[];
}

/**
 * Counts and times every request by route pattern, method and status, and
 * logs it: writes and refusals at info, reads and quiet routes at debug.
 * Only method, path, status and timing: never a header or a body, which may
 * hold secrets.
 */
export function measure(options: MeasureOptions): MiddlewareHandler {
  const { metrics, log } = options;
  if (!metrics || !log) throw new TypeError("The request metrics need metrics and a logger");
  const quiet = new Set(options.quietRoutes ?? []);
  // Labelled metric children, cached: looking labels up per request was a measurable share of
  // a heartbeat's cost at 20,000/s. Routes are patterns, so the set stays small.
  const counters = new Map<string, { inc(): void }>();
  const timers = new Map<string, { observe(v: number): void }>();
  return async function measure(c, next) {
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
    const debug = status < 400 && (method === "GET" || quiet.has(route));
    const level = status >= 500 ? "error" : debug ? "debug" : "info";
    log[level]("HTTP request", { method, path: c.req.path, status, ms: Math.round(ms * 10) / 10 });
  };
}
