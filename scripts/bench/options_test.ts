import assert from "node:assert/strict";
import { AGENT_TLS_TARGET, parseBenchArgs, TARGET } from "./options.ts";

Deno.test("parseBenchArgs() defaults to the target scenario", () => {
  const options = parseBenchArgs([])!;
  assert.equal(options.agents, TARGET.agents);
  assert.equal(options.rate, TARGET.rate);
  assert.equal(options.durationMs, 20_000);
  assert.equal(options.client, "raw");
  assert.equal(options.shape, "pooled");
  assert.equal(options.quick, false);
});

Deno.test("parseBenchArgs() gives --shape agent-tls its own target and smoke run", () => {
  const full = parseBenchArgs(["--shape", "agent-tls"])!;
  assert.equal(full.agents, AGENT_TLS_TARGET.agents);
  assert.equal(full.durationMs, AGENT_TLS_TARGET.durationMs);
  assert.equal(full.intervalMs, 5_000);
  const quick = parseBenchArgs(["--shape", "agent-tls", "--quick", "--interval", "2s"])!;
  assert.equal(quick.agents, 500);
  assert.equal(quick.durationMs, 20_000);
  assert.equal(quick.intervalMs, 2_000);
  assert.throws(() => parseBenchArgs(["--shape", "agent-tls", "--rate", "10"]), /--rate/);
  assert.throws(() => parseBenchArgs(["--interval", "2s"]), /agent-tls only/);
  assert.throws(() => parseBenchArgs(["--shape", "agent-tls", "--agents", "10001"]), /10000/);
  assert.throws(() => parseBenchArgs(["--shape", "mesh"]), /Invalid --shape "mesh"/);
});

Deno.test("parseBenchArgs() lets explicit flags override --quick", () => {
  const options = parseBenchArgs(["--quick", "--rate", "3000", "--duration", "1m"])!;
  assert.equal(options.agents, 500);
  assert.equal(options.rate, 3_000);
  assert.equal(options.durationMs, 60_000);
  assert.equal(options.quick, true);
});

Deno.test("parseBenchArgs() rejects bad values with the flag's name", () => {
  assert.throws(() => parseBenchArgs(["--agents", "0"]), /Invalid --agents "0"/);
  assert.throws(() => parseBenchArgs(["--duration", "20"]), /Invalid --duration "20"/);
  assert.throws(() => parseBenchArgs(["--client", "curl"]), /Invalid --client "curl"/);
  assert.throws(() => parseBenchArgs(["--agents", "100000"]), /at most 99999/);
  assert.throws(() => parseBenchArgs(["--bogus"]));
  assert.equal(parseBenchArgs(["--help"]), null);
});
