/**
 * The `agent-tls` shape of the heartbeat bench (`deno task bench --only
 * heartbeat --shape agent-tls`): N agents, each with its own certificate and
 * its own mTLS connection to the TLS port, heartbeating at the default
 * interval through the agent's own client. It answers what a fleet costs the
 * server: failed heartbeats, latency, RSS, CPU per heartbeat and RSS per idle
 * connection, judged against {@link AGENT_TLS_TARGET}.
 *
 * Steps: the server as its own process; its RSS with no agent; one join
 * token for the whole fleet; load processes (`agent_tls_load.ts`) that enrol
 * and register their agents; the server's RSS and open sockets with every
 * agent connected; the measured window; SIGTERM and the exit code.
 */
import { fileURLToPath } from "node:url";
import { formatDuration } from "../../core/duration.ts";
import type { AgentTlsLoadConfig, AgentTlsLoadResult } from "./agent_tls_load.ts";
import { Histogram } from "./histogram.ts";
import { type LoadChild, spawnLoad, split, startAll, withTimeout } from "./load_process.ts";
import { AGENT_TLS_TARGET, type BenchOptions } from "./options.ts";
import { markdownTable, ms, thousands } from "./report.ts";
import { launchServer, readCpuMs, readRss, scrapeMetrics } from "./server_process.ts";

const LOAD_SCRIPT = fileURLToPath(new URL("./agent_tls_load.ts", import.meta.url));
/** How long load processes may take to enrol and register their agents. */
const READY_TIMEOUT_MS = 300_000;
/** How long after the window a heartbeat still running may complete. */
const DRAIN_MS = 10_000;
const RSS_SAMPLE_MS = 500;
const MB = 1024 * 1024;

function progress(message: string): void {
  console.error(`bench: ${message}`);
}

/** Open TCP sockets of process `pid` (its file descriptors that are sockets). */
function countSockets(pid: number): number {
  let sockets = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      if (Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`).startsWith("socket:")) sockets++;
    } catch {
      // Closed while we looked.
    }
  }
  return sockets;
}

/** Cumulative counts of the server's heartbeat handling-time histogram, by upper bound (s). */
async function heartbeatBuckets(base: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const buckets = new Map<number, number>();
  const line =
    /^ironmesh_http_request_duration_seconds_bucket\{(?=[^}]*route="\/v1\/nodes\/:name\/heartbeat")(?=[^}]*method="POST")(?=[^}]*le="([^"]+)")[^}]*\} (\S+)$/gm;
  for (const [, le, count] of text.matchAll(line)) {
    buckets.set(le === "+Inf" ? Infinity : Number(le), Number(count));
  }
  return buckets;
}

/**
 * The upper bound (ms) of the bucket holding the `q` quantile of the
 * handling times recorded between two scrapes: the server's own view, from
 * the handler's start to its answer, without the wait before it.
 */
function bucketQuantile(before: Map<number, number>, after: Map<number, number>, q: number) {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  for (const le of bounds) {
    if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= q * total) return le * 1000;
  }
  return Infinity;
}

async function adminCall(base: string, token: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

/** Runs the shape; resolves to the exit code (0 when the run completed, met or not). */
export async function benchAgentTls(options: BenchOptions): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "ironmesh-bench-tls-" });
  const dataDir = `${dir}/server`;
  await Deno.mkdir(dataDir);
  progress("starting the server");
  const server = await launchServer({
    dataDir,
    ...(options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {}),
  });
  const pid = server.info.pid;
  const base = `http://${server.info.http}`;
  const children: LoadChild[] = [];
  let stopped = false;
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    const rssIdle = readRss(pid) ?? 0;
    const socketsIdle = countSockets(pid);
    // Peak over the whole run, enrolment included, and over the window alone.
    let peakRss = rssIdle;
    let peakWindowRss = 0;
    let inWindow = false;
    sampler = setInterval(() => {
      const rss = readRss(pid) ?? 0;
      peakRss = Math.max(peakRss, rss);
      if (inWindow) peakWindowRss = Math.max(peakWindowRss, rss);
    }, RSS_SAMPLE_MS);
    const { token } = await adminCall(base, server.adminToken, "/v1/tokens", {
      kind: "join",
      serviceAccount: "bench",
      uses: options.agents,
      ttl: "1h",
      description: "agent-tls bench",
    });
    const roots = await adminCall(base, server.adminToken, "/v1/ca/roots");
    const shares = split(options.agents, options.loadProcs);
    let first = 0;
    for (const [i, share] of shares.entries()) {
      const config: AgentTlsLoadConfig = {
        url: `https://${server.info.https}`,
        caPem: roots.bundlePem,
        joinToken: token,
        firstAgent: first,
        agents: share,
        fleet: options.agents,
        intervalMs: options.intervalMs,
        warmupMs: options.warmupMs,
        durationMs: options.durationMs,
        drainMs: DRAIN_MS,
      };
      first += share;
      children.push(await spawnLoad(LOAD_SCRIPT, config, `${dir}/load-${i}.json`));
    }
    const began = performance.now();
    await withTimeout(
      Promise.all(children.map((c) => c.lines.next("ready"))),
      READY_TIMEOUT_MS,
      "waiting for agents to enrol and register",
    );
    const setupSeconds = (performance.now() - began) / 1000;
    progress(
      `enrolled and registered ${thousands(options.agents)} agents in ${setupSeconds.toFixed(1)} s`,
    );
    const rssConnected = readRss(pid) ?? 0;
    const socketsConnected = countSockets(pid);
    const handlingBefore = await heartbeatBuckets(base);
    const metricsBefore = await scrapeMetrics(
      server.info.http.split(":")[0]!,
      port(server.info.http),
    );

    const at = Date.now() + 500;
    const windowStart = at + options.warmupMs;
    const windowEnd = windowStart + options.durationMs;
    let cpuStart = 0;
    let cpuEnd = 0;
    let socketsInWindow = 0;
    const timers = [
      setTimeout(() => {
        cpuStart = readCpuMs(pid) ?? 0;
        inWindow = true;
      }, windowStart - Date.now()),
      setTimeout(
        () => socketsInWindow = countSockets(pid),
        windowStart + options.durationMs / 2 - Date.now(),
      ),
      setTimeout(() => {
        cpuEnd = readCpuMs(pid) ?? 0;
        inWindow = false;
      }, windowEnd - Date.now()),
    ];
    await startAll(children, at);
    progress(
      `${thousands(options.agents)} agents beating every ${formatDuration(options.intervalMs)}: ${
        formatDuration(options.warmupMs)
      } warm-up, ${formatDuration(options.durationMs)} measured`,
    );
    const results = await withTimeout(
      Promise.all(children.map((c) => c.lines.next<AgentTlsLoadResult>("its result"))),
      options.warmupMs + options.durationMs + DRAIN_MS + 60_000,
      "waiting for load results",
    );
    clearInterval(sampler);
    for (const timer of timers) clearTimeout(timer);
    cpuEnd ||= readCpuMs(pid) ?? 0;
    const rssAfter = readRss(pid) ?? 0;
    const handlingAfter = await heartbeatBuckets(base);
    const metricsAfter = await scrapeMetrics(
      server.info.http.split(":")[0]!,
      port(server.info.http),
    );
    for (const child of children) {
      const { code } = await child.process.status;
      if (code !== 0) throw new Error(`A load process exited with code ${code}`);
    }
    stopped = true;
    const exitCode = await server.stop();

    const latency = new Histogram();
    const service = new Histogram();
    const errors: Record<string, number> = {};
    let scheduled = 0, ok = 0, unanswered = 0, resends = 0, setupErrors = 0, registered = 0;
    let loadCpuMs = 0, loadRss = 0, loadStallMs = 0;
    let firstError: string | null = null;
    for (const r of results) {
      latency.merge(r.latency);
      service.merge(r.service);
      for (const [why, n] of Object.entries(r.errors)) errors[why] = (errors[why] ?? 0) + n;
      scheduled += r.scheduled;
      ok += r.ok;
      unanswered += r.unanswered;
      resends += r.resends;
      setupErrors += r.setupErrors;
      registered += r.registered;
      loadCpuMs += r.cpuMs;
      loadRss += r.rssBytes;
      loadStallMs = Math.max(loadStallMs, r.maxStallMs);
      firstError ??= r.firstError;
    }
    const failed = Object.values(errors).reduce((a, b) => a + b, 0) + unanswered;
    const serverCpuMs = cpuEnd - cpuStart;
    const perConnection = (rssConnected - rssIdle) / Math.max(1, registered);
    const beats = (result: string) =>
      (metricsAfter.get(`ironmesh_heartbeats_total{result="${result}"}`) ?? 0) -
      (metricsBefore.get(`ironmesh_heartbeats_total{result="${result}"}`) ?? 0);

    console.log(markdownTable(
      [
        "scenario",
        "agents",
        "interval",
        "heartbeats/s",
        "p50",
        "p99",
        "max",
        "failed",
        "server RSS (peak)",
        "server CPU / heartbeat",
        "RSS / idle connection",
      ],
      [[
        options.quick ? "agent-tls (quick)" : "agent-tls",
        thousands(registered),
        formatDuration(options.intervalMs),
        thousands(ok / (options.durationMs / 1000)),
        ms(latency.quantile(0.5)),
        ms(latency.quantile(0.99)),
        ms(latency.maxMs),
        thousands(failed),
        `${(peakRss / MB).toFixed(0)} MB`,
        `${(serverCpuMs / Math.max(1, ok)).toFixed(3)} ms`,
        `${(perConnection / 1024).toFixed(0)} KB`,
      ]],
    ));
    console.log();
    console.log(
      verdictLine(options, { registered, failed, p99Ms: latency.quantile(0.99), peakRss }),
    );
    console.log();
    console.log(
      `- window: ${formatDuration(options.durationMs)} after ${
        formatDuration(options.warmupMs)
      } warm-up; ${thousands(scheduled)} heartbeats due, ${thousands(ok)} answered 200`,
    );
    if (failed > 0 || setupErrors > 0) {
      console.log(
        `- failures: ${
          Object.entries(errors).map(([k, n]) => `${k} x${n}`).join(", ") || "none"
        }; unanswered ${unanswered}; setup ${setupErrors}; first: ${firstError}`,
      );
    }
    console.log(
      `- resends on a fresh connection (server closed the reused one): ${thousands(resends)}`,
    );
    console.log(
      `- service time (send to answer): p50 ${ms(service.quantile(0.5))}, p99 ${
        ms(service.quantile(0.99))
      }`,
    );
    const handling = (q: number) => {
      const bound = bucketQuantile(handlingBefore, handlingAfter, q);
      return bound === Infinity ? "over 5 s" : `at most ${ms(bound)}`;
    };
    console.log(
      `- server handling time (its request histogram, handler start to answer; the rest of the latency is waiting before the handler): p50 ${
        handling(0.5)
      }, p99 ${handling(0.99)}`,
    );
    console.log(
      `- server sockets: ${socketsIdle} idle, ${
        thousands(socketsConnected)
      } with the fleet registered, ${
        thousands(socketsInWindow)
      } mid-window (one connection per agent means about ${thousands(registered)} more than idle)`,
    );
    console.log(
      `- server RSS: ${(rssIdle / MB).toFixed(0)} MB with no agent, ${
        (rssConnected / MB).toFixed(0)
      } MB with ${thousands(registered)} agents connected and registered (${
        (perConnection / 1024).toFixed(0)
      } KB each: TLS connection plus node state), peak ${
        (peakWindowRss / MB).toFixed(0)
      } MB in the window and ${(peakRss / MB).toFixed(0)} MB over the run, ${
        (rssAfter / MB).toFixed(0)
      } MB after`,
    );
    const pct = (cpu: number) => `${(cpu / options.durationMs * 100).toFixed(1)}%`;
    console.log(
      `- CPU in the window (100% = one core): server ${pct(serverCpuMs)} (${
        (serverCpuMs / Math.max(1, ok)).toFixed(3)
      } ms per heartbeat), load generators ${pct(loadCpuMs)}; load generators' RSS ${
        (loadRss / MB).toFixed(0)
      } MB in ${options.loadProcs} process(es), longest load-generator stall ${ms(loadStallMs)}`,
    );
    console.log(
      `- server counters: ironmesh_heartbeats_total unchanged +${
        thousands(beats("unchanged"))
      }, changed +${thousands(beats("changed"))}, rejected +${thousands(beats("rejected"))}`,
    );
    console.log(
      `- setup: enrol + register of ${thousands(options.agents)} agents in ${
        setupSeconds.toFixed(1)
      } s`,
    );
    console.log(`- server exit on SIGTERM: code ${exitCode}`);
    if (exitCode !== 0) console.error(`bench: server log tail:\n${server.stderrTail()}`);
    return exitCode === 0 ? 0 : 1;
  } finally {
    clearInterval(sampler);
    for (const child of children) {
      try {
        child.process.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
    if (!stopped) {
      const code = await server.stop().catch(() => null);
      if (code !== 0) console.error(`bench: server log tail:\n${server.stderrTail()}`);
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

function port(hostPort: string): number {
  return Number(hostPort.slice(hostPort.lastIndexOf(":") + 1));
}

/** PASS needs the target's fleet and window; a smaller run is not judged. */
function verdictLine(
  options: BenchOptions,
  f: { registered: number; failed: number; p99Ms: number; peakRss: number },
): string {
  const t = AGENT_TLS_TARGET;
  const goal = `${thousands(t.agents)} agents on their own mTLS connections, ${
    formatDuration(t.durationMs)
  }: ${t.failed} failed, p99 <= ${t.p99Ms} ms, server RSS <= ${t.rssBytes / MB} MB`;
  if (f.registered < t.agents || options.durationMs < t.durationMs) {
    return `Target (${goal}): NOT JUDGED: this run had ${thousands(f.registered)} agents for ${
      formatDuration(options.durationMs)
    }`;
  }
  const misses: string[] = [];
  if (f.failed > t.failed) misses.push(`${thousands(f.failed)} failed heartbeats`);
  if (f.p99Ms > t.p99Ms) misses.push(`p99 ${ms(f.p99Ms)}`);
  if (f.peakRss > t.rssBytes) misses.push(`server RSS ${(f.peakRss / MB).toFixed(0)} MB`);
  return misses.length === 0
    ? `Target (${goal}): PASS`
    : `Target (${goal}): MISS: ${misses.join("; ")}`;
}
