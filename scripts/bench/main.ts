/**
 * `deno task bench`: measures the registry's heartbeat path on the real
 * server, end to end, and prints a markdown table plus a PASS/MISS line
 * against the target (20,000 heartbeats/s from 5,000 agents, p99 <= 50 ms).
 *
 * Steps: a raw `node:sqlite` reference on this machine; the server started
 * as its own process; one agent-role token per simulated agent created over
 * REST; load processes (`heartbeat_load.ts`) that register every agent and
 * then drive heartbeats open-loop; server RSS and CPU sampled from `/proc`
 * and counters read from `GET /metrics`; SIGTERM and a check of the exit code.
 *
 * `--shape agent-tls` runs the other shape instead (`agent_tls.ts`): every
 * agent on its own mTLS connection at its heartbeat interval.
 *
 * Progress goes to stderr, the report to stdout. Exits 0 when the run
 * completed, whether or not the target was met; 1 when the bench could not
 * run or the server misbehaved (revision moved on pure heartbeats, unclean exit).
 */
import { fileURLToPath } from "node:url";
import type { BenchAgent, LoadConfig, LoadResult } from "./heartbeat_load.ts";
import { Histogram } from "./histogram.ts";
import { type BenchOptions, parseBenchArgs, USAGE } from "./options.ts";
import { heartbeatTable, markdownTable, ms, thousands, verdict } from "./report.ts";
import {
  type BenchServer,
  readCpuMs,
  readMachineTicks,
  readRss,
  scrapeMetrics,
  startBenchServer,
} from "./server_process.ts";
import { measureSqliteInserts } from "./sqlite_reference.ts";
import { spawnLoad, split, startAll, withTimeout } from "./load_process.ts";
import { benchAgentTls } from "./agent_tls.ts";

const LOAD_SCRIPT = fileURLToPath(new URL("./heartbeat_load.ts", import.meta.url));
/** How long load processes may take to register their agents. */
const READY_TIMEOUT_MS = 180_000;
/** How long after the window queued and in-flight heartbeats may still complete. */
const DRAIN_MS = 5_000;
const RSS_SAMPLE_MS = 200;
/** CPU of other processes (100 = one core) above which the report warns that the machine was busy. */
const BUSY_WARNING_PCT = 15;
const MB = 1024 * 1024;

function progress(message: string): void {
  console.error(`bench: ${message}`);
}

function nodeName(index: number): string {
  return `bench-${String(index + 1).padStart(5, "0")}`;
}

/** Creates `count` agent-role tokens over REST, a few requests at a time. */
async function createTokens(server: BenchServer, count: number): Promise<string[]> {
  const tokens: string[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const res = await fetch(`http://${server.host}:${server.port}/v1/tokens`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${server.adminToken}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ role: "agent", description: "bench" }),
      }).catch((error) => {
        throw new Error(`Cannot create agent token ${i + 1}: POST /v1/tokens: ${error.message}`);
      });
      const body = await res.json();
      if (res.status !== 201 || typeof body.token !== "string") {
        throw new Error(`POST /v1/tokens answered ${res.status}: ${JSON.stringify(body)}`);
      }
      tokens[i] = body.token;
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return tokens;
}

interface LoadRun {
  results: LoadResult[];
  peakRss: number;
  rssBefore: number;
  serverCpuMs: number;
  /** Share of all cores' time the whole machine was busy during the window. */
  machineBusy: number;
  metricsBefore: Map<string, number>;
  metricsAfter: Map<string, number>;
}

/** Starts the load processes, waits for registration, runs the window and gathers the results. */
async function runLoad(
  server: BenchServer,
  agents: BenchAgent[],
  options: BenchOptions,
  dir: string,
): Promise<LoadRun> {
  const agentShares = split(agents.length, options.loadProcs);
  const rateShares = split(options.rate, options.loadProcs);
  const connectionShares = split(options.connections, options.loadProcs);
  let firstAgent = 0;
  const children = await Promise.all(agentShares.map((share, i) => {
    const config: LoadConfig = {
      host: server.host,
      port: server.port,
      agents: agents.slice(firstAgent, firstAgent += share),
      rate: rateShares[i]!,
      connections: connectionShares[i]!,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      drainMs: DRAIN_MS,
      client: options.client,
    };
    return spawnLoad(LOAD_SCRIPT, config, `${dir}/load-${i}.json`);
  }));
  try {
    const began = performance.now();
    await withTimeout(
      Promise.all(children.map((c) => c.lines.next("ready"))),
      READY_TIMEOUT_MS,
      "waiting for agents to register",
    );
    progress(
      `registered ${thousands(agents.length)} agents in ${
        ((performance.now() - began) / 1000).toFixed(1)
      } s`,
    );
    const metricsBefore = await scrapeMetrics(server.host, server.port);
    const rssBefore = readRss(server.pid) ?? 0;
    let peakRss = rssBefore;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, readRss(server.pid) ?? 0);
    }, RSS_SAMPLE_MS);

    const at = Date.now() + 300;
    const windowStart = at + options.warmupMs;
    const snapshot = () => ({ server: readCpuMs(server.pid) ?? 0, machine: readMachineTicks() });
    let atStart = snapshot();
    let atEnd = atStart;
    const cpuTimers = [
      setTimeout(() => atStart = snapshot(), windowStart - Date.now()),
      setTimeout(() => atEnd = snapshot(), windowStart + options.durationMs - Date.now()),
    ];
    await startAll(children, at);
    progress(
      `offering ${thousands(options.rate)} heartbeats/s: ${options.warmupMs / 1000} s warm-up, ${
        options.durationMs / 1000
      } s measured`,
    );
    const results = await withTimeout(
      Promise.all(children.map((c) => c.lines.next<LoadResult>("its result"))),
      options.warmupMs + options.durationMs + DRAIN_MS + 30_000,
      "waiting for load results",
    );
    clearInterval(sampler);
    for (const timer of cpuTimers) clearTimeout(timer);
    peakRss = Math.max(peakRss, readRss(server.pid) ?? 0);
    const metricsAfter = await scrapeMetrics(server.host, server.port);
    for (const child of children) {
      const { code } = await child.process.status;
      if (code !== 0) throw new Error(`A load process exited with code ${code}`);
    }
    return {
      results,
      peakRss,
      rssBefore,
      serverCpuMs: atEnd.server - atStart.server,
      machineBusy: (atEnd.machine.busy - atStart.machine.busy) /
        (atEnd.machine.total - atStart.machine.total),
      metricsBefore,
      metricsAfter,
    };
  } catch (error) {
    for (const child of children) {
      try {
        child.process.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
    throw error;
  }
}

/**
 * Per second of the run: completions, and the latency of heartbeats due in
 * that second. Seconds after the window appear only while requests drain.
 */
function timelineTable(results: LoadResult[], options: BenchOptions): string {
  const length = Math.max(...results.map((r) => r.seconds.length));
  const rows: string[][] = [];
  for (let i = 0; i < length; i++) {
    const latency = new Histogram();
    let ok = 0;
    for (const r of results) {
      const second = r.seconds[i];
      if (!second) continue;
      latency.merge(second.latency);
      ok += second.ok;
    }
    const phase = i * 1000 < options.warmupMs
      ? " (warm-up)"
      : i * 1000 >= options.warmupMs + options.durationMs
      ? " (drain)"
      : "";
    if (phase === " (drain)" && ok === 0) break;
    rows.push([
      `${i}${phase}`,
      thousands(ok),
      ms(latency.quantile(0.5)),
      ms(latency.quantile(0.99)),
      ms(latency.maxMs),
    ]);
  }
  return markdownTable(["second", "200s", "p50 (due)", "p99 (due)", "max (due)"], rows);
}

/** Change of one series between two scrapes (a missing series counts as 0). */
function delta(before: Map<string, number>, after: Map<string, number>, series: string): number {
  return (after.get(series) ?? 0) - (before.get(series) ?? 0);
}

async function bench(options: BenchOptions): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "ironmesh-bench-" });
  let server: BenchServer | null = null;
  try {
    progress(
      `raw node:sqlite reference: ${thousands(options.sqliteRows)} rows in batches of 1,000`,
    );
    const sqliteRate = await measureSqliteInserts(dir, { rows: options.sqliteRows });

    const dataDir = `${dir}/server`;
    await Deno.mkdir(dataDir);
    progress("starting the server");
    const cpuProfDir = options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {};
    server = await startBenchServer({ dataDir, ...cpuProfDir });

    const tokenStart = performance.now();
    const tokens = await createTokens(server, options.agents);
    const tokenSeconds = (performance.now() - tokenStart) / 1000;
    progress(`created ${thousands(options.agents)} agent tokens in ${tokenSeconds.toFixed(1)} s`);
    const agents = tokens.map((token, index) => ({ index, node: nodeName(index), token }));

    const run = await runLoad(server, agents, options, dir);
    const rssAfter = readRss(server.pid) ?? 0;
    const stopping = server;
    server = null;
    const exitCode = await stopping.stop();

    const latency = new Histogram();
    const service = new Histogram();
    const errors: Record<string, number> = {};
    let okInWindow = 0, okTotal = 0, unsent = 0, loadCpuMs = 0, maxStallMs = 0;
    let firstError: string | null = null;
    for (const r of run.results) {
      latency.merge(r.latency);
      service.merge(r.service);
      for (const [reason, n] of Object.entries(r.errors)) {
        errors[reason] = (errors[reason] ?? 0) + n;
      }
      okInWindow += r.okInWindow;
      okTotal += r.okTotal;
      unsent += r.unsent;
      loadCpuMs += r.cpuMs;
      maxStallMs = Math.max(maxStallMs, r.maxStallMs);
      firstError ??= r.firstError;
    }
    const errorCount = Object.values(errors).reduce((a, b) => a + b, 0) + unsent;
    const registrationErrors = run.results.reduce((a, r) => a + r.registrationErrors, 0);
    const figures = {
      scenario: options.quick ? "heartbeats (quick)" : "heartbeats",
      agents: options.agents,
      rate: options.rate,
      achieved: okInWindow / (options.durationMs / 1000),
      p50Ms: latency.quantile(0.5),
      p90Ms: latency.quantile(0.9),
      p99Ms: latency.quantile(0.99),
      maxMs: latency.maxMs,
      errors: errorCount,
      peakRssBytes: run.peakRss,
      sqliteRowsPerSec: sqliteRate,
    };

    const { metricsBefore: before, metricsAfter: after } = run;
    const revisionBefore = before.get("ironmesh_registry_revision") ?? NaN;
    const revisionAfter = after.get("ironmesh_registry_revision") ?? NaN;
    const beats = (result: string) =>
      delta(before, after, `ironmesh_heartbeats_total{result="${result}"}`);
    const windowSeconds = options.durationMs / 1000;
    const revisionStill = revisionBefore === revisionAfter;
    const { line } = verdict(figures);

    console.log(heartbeatTable([figures]));
    console.log();
    console.log(line);
    console.log();
    console.log(
      `- load: ${options.client} HTTP/1.1 keep-alive, ${options.connections} connections in ${options.loadProcs} process(es), open loop, latency from each heartbeat's due time`,
    );
    console.log(
      `- window: ${windowSeconds} s after ${options.warmupMs / 1000} s warm-up; ${
        thousands(run.results.reduce((a, r) => a + r.scheduled, 0))
      } heartbeats due, ${thousands(okInWindow)} answered 200 inside it`,
    );
    if (registrationErrors > 0) {
      console.log(`- registration: ${registrationErrors} of ${options.agents} agents failed`);
    }
    if (errorCount > 0) {
      console.log(
        `- errors: ${
          Object.entries(errors).map(([k, n]) => `${k} x${n}`).join(", ") || "none"
        }; never sent: ${unsent}; first: ${firstError}`,
      );
    }
    console.log(
      `- service time (send to response, without queueing in the generator): p50 ${
        ms(service.quantile(0.5))
      }, p99 ${ms(service.quantile(0.99))}`,
    );
    const cores = navigator.hardwareConcurrency;
    const pct = (cpuMs: number) => `${(cpuMs / options.durationMs * 100).toFixed(0)}%`;
    const machinePct = run.machineBusy * cores * 100;
    const otherPct = machinePct - (run.serverCpuMs + loadCpuMs) / options.durationMs * 100;
    console.log(
      `- CPU in the window (100% = one core, ${cores} cores): server ${pct(run.serverCpuMs)}, ` +
        `load generator ${pct(loadCpuMs)}, everything else ${
          Math.max(0, otherPct).toFixed(0)
        }%, machine busy ${machinePct.toFixed(0)}%; server CPU per heartbeat ${
          (run.serverCpuMs * 1000 / Math.max(1, okInWindow)).toFixed(0)
        } µs; longest load-generator stall ${ms(maxStallMs)}`,
    );
    if (otherPct > BUSY_WARNING_PCT) {
      console.log(
        `- WARNING: other processes used ${
          otherPct.toFixed(0)
        }% of a core during the window: latency and rate reflect a busy machine; repeat when it is quiet`,
      );
    }
    console.log(
      `- server RSS: ${(run.rssBefore / MB).toFixed(0)} MB after registration, peak ${
        (run.peakRss / MB).toFixed(0)
      } MB, ${(rssAfter / MB).toFixed(0)} MB after the load`,
    );
    console.log(
      `- server counters: ironmesh_heartbeats_total unchanged +${thousands(beats("unchanged"))}, ` +
        `changed +${thousands(beats("changed"))}, rejected +${thousands(beats("rejected"))} ` +
        `(client saw ${thousands(okTotal)} x 200)`,
    );
    console.log(
      `- ironmesh_registry_revision: ${revisionBefore} before, ${revisionAfter} after: ${
        revisionStill ? "unchanged, as pure heartbeats must leave it" : "MOVED (bug)"
      }`,
    );
    if (options.timeline) {
      console.log();
      console.log(timelineTable(run.results, options));
    }
    console.log(`- setup: ${thousands(options.agents)} tokens in ${tokenSeconds.toFixed(1)} s`);
    console.log(`- server exit on SIGTERM: code ${exitCode}`);
    if (exitCode !== 0) console.error(`bench: server log tail:\n${stopping.stderrTail()}`);
    return exitCode === 0 && revisionStill ? 0 : 1;
  } finally {
    if (server) {
      const code = await server.stop().catch(() => null);
      if (code !== 0) console.error(`bench: server log tail:\n${server.stderrTail()}`);
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  let options: BenchOptions | null;
  try {
    options = parseBenchArgs(Deno.args);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    Deno.exit(2);
  }
  if (!options) {
    console.log(USAGE);
    Deno.exit(0);
  }
  try {
    Deno.exit(await (options.shape === "agent-tls" ? benchAgentTls(options) : bench(options)));
  } catch (error) {
    console.error(`bench: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
