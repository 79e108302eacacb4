/**
 * Plain helpers of the CA benchmark: its command-line options, latency
 * percentiles, and number formatting for the markdown table.
 */
import { parseArgs } from "node:util";

/** Options of `scripts/bench/ca.ts`. */
export interface CaBenchOptions {
  /** Hosts enrolled over plain HTTP in the main window. */
  count: number;
  /** Hosts enrolled over the TLS port (0 skips it). */
  tlsCount: number;
  /** Requests in flight per load process. */
  concurrency: number;
  /** Extra, smaller plain-HTTP runs at these concurrencies (the "what lifts it" probe). */
  sweep: number[];
  /** Hosts per sweep run. */
  sweepCount: number;
  /** Certificates per in-process measurement. */
  inProcessCount: number;
  /** Rounds of the in-process measurements (the median is reported). */
  rounds: number;
  /** Untimed enrolments before each window. */
  warmup: number;
  /** When set, the server writes a V8 CPU profile into this directory. */
  cpuProfDir: string | undefined;
}

export const CA_USAGE = `Usage: deno run -A scripts/bench/ca.ts [--quick] [options]

  --quick              500 hosts (100 over TLS), one smaller in-process round
  --count N            hosts enrolled over plain HTTP (default 10000)
  --tls-count N        hosts enrolled over the TLS port (default 1000; 0 skips)
  --concurrency N      requests in flight (default 32)
  --sweep A,B,...      extra plain-HTTP runs at these concurrencies (default none)
  --sweep-count N      hosts per sweep run (default 2000)
  --cpu-prof DIR       run the server with --cpu-prof, profile written to DIR
`;

function positiveInt(name: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new Error(`--${name} must be an integer >= ${min}, not "${text}"`);
  }
  return n;
}

/** Parses the command line; throws with a message naming the bad option. */
export function parseCaBenchArgs(args: string[]): CaBenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      count: { type: "string" },
      "tls-count": { type: "string" },
      concurrency: { type: "string" },
      sweep: { type: "string" },
      "sweep-count": { type: "string" },
      "cpu-prof": { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  const quick = values.quick;
  const sweep = values.sweep === undefined || values.sweep === ""
    ? []
    : values.sweep.split(",").map((s) => positiveInt("sweep", s.trim(), 0));
  const count = positiveInt("count", values.count, quick ? 500 : 10_000);
  // One join token allows at most 10,000 uses, and each run uses exactly one.
  if (count > 10_000) throw new Error(`--count must be at most 10000 (one join token's uses)`);
  return {
    count,
    tlsCount: positiveInt("tls-count", values["tls-count"], quick ? 100 : 1_000, 0),
    concurrency: positiveInt("concurrency", values.concurrency, 32),
    sweep,
    sweepCount: positiveInt("sweep-count", values["sweep-count"], quick ? 300 : 2_000),
    inProcessCount: quick ? 1_000 : 4_000,
    rounds: quick ? 1 : 3,
    warmup: quick ? 50 : 200,
    cpuProfDir: values["cpu-prof"],
  };
}

/** Latency percentiles in milliseconds. */
export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Exact percentiles (nearest rank) of `values`, which it sorts in place. */
export function summarize(values: Float64Array): LatencySummary {
  values.sort();
  const at = (q: number) =>
    values.length === 0
      ? NaN
      : values[Math.min(values.length - 1, Math.ceil(q * values.length) - 1)]!;
  return {
    count: values.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: values.length === 0 ? NaN : values[values.length - 1]!,
  };
}

/** `12,345` style. */
export function thousands(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Milliseconds with a sensible number of digits. */
export function ms(n: number): string {
  if (!Number.isFinite(n)) return "–";
  return n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0);
}

/** A fraction as a percentage. */
export function pct(x: number): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : "–";
}

/** A markdown table from a header and rows. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}
