/**
 * Command-line options of `deno task bench`. Two shapes: `pooled` (the
 * default) offers 20,000 heartbeats/s from 5,000 agents over 128 shared
 * plain-HTTP connections, 20 s measured; `agent-tls` runs 5,000 agents each
 * with its own certificate and mTLS connection to the TLS port, beating at
 * the default interval, 5 minutes measured. `--quick` swaps in a short smoke
 * run of either, and any explicit flag wins over both.
 */
import { parseArgs } from "node:util";
import { DEFAULT_INTERVAL_MS } from "../../core/agent_config.ts";
import { formatDuration, parseDuration } from "../../core/duration.ts";

/** How the simulated agents reach the server. */
export type BenchShape = "pooled" | "agent-tls";

/** One bench run, fully resolved. */
export interface BenchOptions {
  /**
   * `pooled`: heartbeats open-loop at `rate` over `connections` shared
   * plain-HTTP connections with agent tokens. `agent-tls`: every agent
   * enrols for its own certificate and heartbeats every `intervalMs` over
   * its own mTLS connection, through the agent's own client.
   */
  shape: BenchShape;
  /** Heartbeat interval of each agent (`agent-tls` only), in ms. */
  intervalMs: number;
  /** Simulated agents, each with its own node and agent-role token. */
  agents: number;
  /** Offered heartbeats per second, across all agents. */
  rate: number;
  /** Measured window, in ms. */
  durationMs: number;
  /** Unmeasured run-in before the window, in ms. */
  warmupMs: number;
  /** Keep-alive connections in total, across load processes. */
  connections: number;
  /** Load-generator processes; agents, rate and connections are split evenly. */
  loadProcs: number;
  /** HTTP client of the load generator. */
  client: "raw" | "fetch";
  /** Rows of the raw SQLite reference. */
  sqliteRows: number;
  /** Directory for a server CPU profile (`--cpu-prof`), or `null` for none. */
  cpuProfDir: string | null;
  /** Print throughput and latency per second of the run. */
  timeline: boolean;
  quick: boolean;
}

/** The target: what a PASS means. */
export const TARGET = { agents: 5_000, rate: 20_000, p99Ms: 50 } as const;

/** The target of the `agent-tls` shape (5 minutes at the default interval). */
export const AGENT_TLS_TARGET = {
  agents: 5_000,
  durationMs: 300_000,
  p99Ms: 50,
  failed: 0,
  rssBytes: 300 * 1024 * 1024,
} as const;

type Defaults = Omit<BenchOptions, "quick" | "cpuProfDir" | "timeline">;

const FULL: Defaults = {
  shape: "pooled",
  intervalMs: DEFAULT_INTERVAL_MS,
  agents: TARGET.agents,
  rate: TARGET.rate,
  durationMs: 20_000,
  warmupMs: 3_000,
  connections: 128,
  loadProcs: 1,
  client: "raw",
  sqliteRows: 200_000,
};

const QUICK: Defaults = {
  ...FULL,
  agents: 500,
  rate: 2_000,
  durationMs: 3_000,
  warmupMs: 1_000,
  connections: 32,
  sqliteRows: 50_000,
};

/**
 * `agent-tls`: the warm-up covers two intervals, so every agent has reused
 * its connection before the window; several load processes, because each
 * agent's TLS client costs the generator memory and CPU.
 */
const AGENT_TLS: Defaults = {
  ...FULL,
  shape: "agent-tls",
  agents: AGENT_TLS_TARGET.agents,
  durationMs: AGENT_TLS_TARGET.durationMs,
  warmupMs: 2 * DEFAULT_INTERVAL_MS,
  loadProcs: 4,
};

const AGENT_TLS_QUICK: Defaults = {
  ...AGENT_TLS,
  agents: 500,
  durationMs: 20_000,
  loadProcs: 2,
};

/** Flags that mean something only in the `pooled` shape. */
const POOLED_ONLY = ["rate", "connections", "client", "sqlite-rows"] as const;

/** `--help` text. */
export const USAGE = `Usage: deno task bench [options]

Measures heartbeats/s and latency of a real Ironmesh server under simulated agents.

  --shape S          pooled: open-loop heartbeats over shared plain-HTTP connections;
                     agent-tls: each agent enrols and heartbeats over its own mTLS
                     connection with the agent's client, ${
  formatDuration(AGENT_TLS.durationMs)
} measured (default: pooled)
  --interval D       heartbeat interval of each agent, agent-tls only (default: ${
  formatDuration(DEFAULT_INTERVAL_MS)
})
  --agents N         simulated agents, one token and node each (default: ${FULL.agents})
  --rate N           offered heartbeats per second, open loop (default: ${FULL.rate})
  --duration D       measured window, e.g. 20s (default: 20s)
  --warmup D         unmeasured run-in before the window (default: 3s)
  --connections N    keep-alive connections in total (default: ${FULL.connections})
  --load-procs N     load-generator processes (default: ${FULL.loadProcs})
  --client C         raw (HTTP/1.1 over Deno.connect) or fetch (default: raw)
  --sqlite-rows N    rows for the raw SQLite reference (default: ${FULL.sqliteRows})
  --cpu-prof DIR     write a CPU profile of the server to DIR
  --timeline         also print throughput and latency for each second
  --quick            short smoke run: ${QUICK.agents} agents, ${QUICK.rate}/s, 3s
                     (agent-tls: ${AGENT_TLS_QUICK.agents} agents, ${
  formatDuration(AGENT_TLS_QUICK.durationMs)
})
  -h, --help         print this help`;

/** Parses the arguments; returns `null` when help was asked for. Throws on a bad value. */
export function parseBenchArgs(args: string[]): BenchOptions | null {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      shape: { type: "string" },
      interval: { type: "string" },
      agents: { type: "string" },
      rate: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      connections: { type: "string" },
      "load-procs": { type: "string" },
      client: { type: "string" },
      "sqlite-rows": { type: "string" },
      "cpu-prof": { type: "string" },
      timeline: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return null;
  const shape = shapeOf(values.shape);
  const base = shape === "agent-tls"
    ? (values.quick ? AGENT_TLS_QUICK : AGENT_TLS)
    : (values.quick ? QUICK : FULL);
  if (shape === "agent-tls") {
    const given = POOLED_ONLY.find((flag) => values[flag] !== undefined);
    if (given) throw new Error(`Invalid --${given}: it applies to --shape pooled only`);
  } else if (values.interval !== undefined) {
    throw new Error("Invalid --interval: it applies to --shape agent-tls only");
  }
  const options: BenchOptions = {
    shape,
    intervalMs: duration("--interval", values.interval, base.intervalMs, 100),
    agents: count("--agents", values.agents, base.agents),
    rate: count("--rate", values.rate, base.rate),
    durationMs: duration("--duration", values.duration, base.durationMs),
    warmupMs: duration("--warmup", values.warmup, base.warmupMs, 0),
    connections: count("--connections", values.connections, base.connections),
    loadProcs: count("--load-procs", values["load-procs"], base.loadProcs),
    client: client(values.client, base.client),
    sqliteRows: count("--sqlite-rows", values["sqlite-rows"], base.sqliteRows),
    cpuProfDir: values["cpu-prof"] ?? null,
    timeline: values.timeline,
    quick: values.quick,
  };
  if (options.agents > 99_999) {
    throw new Error(`Invalid --agents ${options.agents}: at most 99999 (node names have 5 digits)`);
  }
  if (shape === "agent-tls" && options.agents > 10_000) {
    throw new Error(
      `Invalid --agents ${options.agents}: at most 10000 with --shape agent-tls (the uses of one join token)`,
    );
  }
  if (options.connections < options.loadProcs || options.agents < options.loadProcs) {
    throw new Error(
      `Invalid --load-procs ${options.loadProcs}: each process needs at least one agent and one connection`,
    );
  }
  return options;
}

function count(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text.replaceAll("_", ""));
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`Invalid ${flag} "${text}": expected a whole number of at least 1`);
  }
  return n;
}

function duration(flag: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const ms = text === "0" ? 0 : parseDuration(text);
  if (ms === undefined || ms < min) {
    throw new Error(`Invalid ${flag} "${text}": expected a duration such as 500ms, 5s or 1m`);
  }
  return ms;
}

function client(text: string | undefined, fallback: "raw" | "fetch"): "raw" | "fetch" {
  if (text === undefined) return fallback;
  if (text !== "raw" && text !== "fetch") {
    throw new Error(`Invalid --client "${text}": expected raw or fetch`);
  }
  return text;
}

function shapeOf(text: string | undefined): BenchShape {
  if (text === undefined) return "pooled";
  if (text !== "pooled" && text !== "agent-tls") {
    throw new Error(`Invalid --shape "${text}": expected pooled or agent-tls`);
  }
  return text;
}
