import assert from "node:assert/strict";
import { FakeClock } from "./clock.ts";
import { jsonLogger } from "./log.ts";

Deno.test("jsonLogger() writes one JSON object per line, fixed keys first", () => {
  const lines: string[] = [];
  const log = jsonLogger((l) => lines.push(l), { clock: new FakeClock(0) });
  log.info("Node registered", { node: "vm-1", msg: "ignored", error: new Error("Boom") });
  assert.deepEqual(lines, [
    '{"ts":"1970-01-01T00:00:00.000Z","level":"info","msg":"Node registered","node":"vm-1","error":"Boom"}',
  ]);
});

Deno.test("jsonLogger() drops lines below its level", () => {
  const lines: string[] = [];
  const log = jsonLogger((l) => lines.push(l), { level: "warn" });
  log.debug("a");
  log.info("b");
  log.warn("c");
  log.error("d");
  assert.deepEqual(lines.map((l) => JSON.parse(l).msg), ["c", "d"]);
});

Deno.test("jsonLogger() writes readable text lines in the text format", () => {
  const lines: string[] = [];
  const log = jsonLogger((l) => lines.push(l), { clock: new FakeClock(0), format: "text" });
  log.warn("Node missed its heartbeats", { node: "vm-1", ttlMs: 15000, detail: "two words" });
  assert.deepEqual(lines, [
    '1970-01-01T00:00:00.000Z WARN  Node missed its heartbeats node=vm-1 ttlMs=15000 detail="two words"',
  ]);
});
