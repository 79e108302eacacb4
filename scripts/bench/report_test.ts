import assert from "node:assert/strict";
import { type HeartbeatFigures, markdownTable, verdict } from "./report.ts";

const TARGET_RUN: HeartbeatFigures = {
  scenario: "heartbeats",
  agents: 5_000,
  rate: 20_000,
  achieved: 19_998,
  p50Ms: 0.4,
  p90Ms: 3,
  p99Ms: 31,
  maxMs: 60,
  errors: 0,
  peakRssBytes: 200 * 1024 * 1024,
  sqliteRowsPerSec: 450_000,
};

Deno.test("verdict() passes a run that meets every part of the target", () => {
  assert.equal(verdict(TARGET_RUN).pass, true);
});

Deno.test("verdict() names every part of a miss", () => {
  const { pass, line } = verdict({ ...TARGET_RUN, achieved: 18_000, p99Ms: 120, errors: 3 });
  assert.equal(pass, false);
  assert.match(line, /achieved 18,000\/s \(10\.0% short\)/);
  assert.match(line, /p99 120 ms \(2\.4x the limit\)/);
  assert.match(line, /3 errors/);
});

Deno.test("verdict() does not judge a smaller run", () => {
  const { pass, line } = verdict({ ...TARGET_RUN, agents: 500, rate: 2_000 });
  assert.equal(pass, null);
  assert.match(line, /NOT JUDGED/);
});

Deno.test("markdownTable() aligns columns", () => {
  assert.equal(
    markdownTable(["a", "bb"], [["ccc", "d"]]),
    "| a   | bb |\n|-----|----|\n| ccc | d  |",
  );
});
