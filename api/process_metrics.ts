/**
 * The process families every Prometheus exporter has (resident memory, CPU
 * seconds, open file descriptors, start time), event-loop lag and the build
 * info, added to a server's metrics registry.
 *
 * prom-client's default collectors are used where they measure something
 * under Deno. Checked on Deno 2.9.6 (2026-12-07): the `process_*` families
 * and the `nodejs_heap_*` ones read real values (`/proc/self`,
 * `process.cpuUsage()`, `process.memoryUsage()`, V8's heap statistics); the
 * families in {@link BROKEN_UNDER_DENO} do not, so they are dropped rather
 * than exported with values that look real.
 */
import client from "prom-client";

/**
 * Default families that are empty or wrong under Deno: `monitorEventLoopDelay`
 * did not see a 300 ms block (max 0.03 ms) and the scrape-time lag probe reads
 * 0; no GC events reach `PerformanceObserver`; active handles and requests are
 * always empty and active resources list at most a pending `setImmediate`; the "Node version" is Deno's compatibility number.
 */
const BROKEN_UNDER_DENO = [
  "nodejs_eventloop_lag_seconds",
  "nodejs_eventloop_lag_min_seconds",
  "nodejs_eventloop_lag_max_seconds",
  "nodejs_eventloop_lag_mean_seconds",
  "nodejs_eventloop_lag_stddev_seconds",
  "nodejs_eventloop_lag_p50_seconds",
  "nodejs_eventloop_lag_p90_seconds",
  "nodejs_eventloop_lag_p99_seconds",
  "nodejs_gc_duration_seconds",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
  "nodejs_version_info",
];

/** How often the event-loop probe's timer is due: short enough to see a stall of a few ms. */
const LAG_PROBE_MS = 100;

/** Options of {@link registerProcessMetrics}. */
export interface ProcessMetricsOptions {
  /** How often the lag probe runs, in milliseconds. Default: 100. */
  probeMs?: number;
}

/**
 * Adds the process families and an event-loop lag histogram to `registry`.
 * The lag probe is a timer that measures how late it fires (the time the loop
 * was busy with something else); call `stop()` to end it.
 */
export function registerProcessMetrics(
  registry: client.Registry,
  options: ProcessMetricsOptions = {},
): { stop(): void } {
  client.collectDefaultMetrics({ register: registry });
  for (const name of BROKEN_UNDER_DENO) registry.removeSingleMetric(name);

  const lag = new client.Histogram({
    name: "ironmesh_event_loop_lag_seconds",
    help:
      "How late a timer due every 100 ms fires: the time the event loop was busy and could not serve requests",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  });
  const probeMs = options.probeMs ?? LAG_PROBE_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // A chain of timeouts, not an interval: each is measured against the moment it was set.
  const probe = () => {
    const due = performance.now() + probeMs;
    const next = setTimeout(() => {
      lag.observe(Math.max(0, performance.now() - due) / 1000);
      probe();
    }, probeMs);
    // The probe must not keep a stopping process alive.
    Deno.unrefTimer(next);
    timer = next;
  };
  probe();
  return { stop: () => clearTimeout(timer) };
}
