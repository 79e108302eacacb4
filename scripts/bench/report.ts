/** Rendering of bench results: a markdown table and the verdict against the target. */
import { TARGET } from "./options.ts";

/** The figures of one heartbeat run. */
export interface HeartbeatFigures {
  scenario: string;
  agents: number;
  /** Offered heartbeats per second. */
  rate: number;
  /** Successful heartbeats per second over the measured window. */
  achieved: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Failed plus never-sent heartbeats due in the window. */
  errors: number;
  peakRssBytes: number;
  sqliteRowsPerSec: number;
}

/** Share of the offered rate that counts as sustaining it (window edges blur the count). */
export const SUSTAIN_FRACTION = 0.995;

/** Renders rows as a markdown table with aligned columns. */
export function markdownTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)]
    .join("\n");
}

/** The result table of the heartbeat bench. */
export function heartbeatTable(figures: HeartbeatFigures[]): string {
  return markdownTable(
    [
      "scenario",
      "agents",
      "target/s",
      "achieved/s",
      "p50",
      "p90",
      "p99",
      "max",
      "errors",
      "server peak RSS",
      "SQLite inserts/s",
    ],
    figures.map((f) => [
      f.scenario,
      thousands(f.agents),
      thousands(f.rate),
      thousands(Math.round(f.achieved)),
      ms(f.p50Ms),
      ms(f.p90Ms),
      ms(f.p99Ms),
      ms(f.maxMs),
      thousands(f.errors),
      `${(f.peakRssBytes / 1024 / 1024).toFixed(0)} MB`,
      thousands(Math.round(f.sqliteRowsPerSec)),
    ]),
  );
}

/**
 * The PASS/MISS line: PASS needs the target's agents and rate offered,
 * at least {@link SUSTAIN_FRACTION} of it achieved, p99 within the target and
 * no errors. A smaller run is not judged.
 */
export function verdict(f: HeartbeatFigures): { pass: boolean | null; line: string } {
  const goal = `${thousands(TARGET.rate)} heartbeats/s from ${
    thousands(TARGET.agents)
  } agents, p99 <= ${TARGET.p99Ms} ms`;
  if (f.agents < TARGET.agents || f.rate < TARGET.rate) {
    return {
      pass: null,
      line: `Target (${goal}): NOT JUDGED: this run offered ${thousands(f.rate)}/s from ${
        thousands(f.agents)
      } agents`,
    };
  }
  const misses: string[] = [];
  if (f.achieved < TARGET.rate * SUSTAIN_FRACTION) {
    const short = (1 - f.achieved / TARGET.rate) * 100;
    misses.push(`achieved ${thousands(Math.round(f.achieved))}/s (${short.toFixed(1)}% short)`);
  }
  if (f.p99Ms > TARGET.p99Ms) {
    misses.push(`p99 ${ms(f.p99Ms)} (${(f.p99Ms / TARGET.p99Ms).toFixed(1)}x the limit)`);
  }
  if (f.errors > 0) misses.push(`${thousands(f.errors)} errors`);
  return misses.length === 0
    ? { pass: true, line: `Target (${goal}): PASS` }
    : { pass: false, line: `Target (${goal}): MISS: ${misses.join("; ")}` };
}

/** `12345.6` → `12,346`. */
export function thousands(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Milliseconds with precision that suits their size: `0.42 ms`, `3.1 ms`, `250 ms`. */
export function ms(value: number): string {
  if (value < 1) return `${value.toFixed(2)} ms`;
  if (value < 10) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(0)} ms`;
}
