import assert from "node:assert/strict";
import { parseBenchArgs, TARGET } from "./options.ts";

Deno.test("parseBenchArgs() defaults to the target scenario", () => {
  const options = parseBenchArgs([])!;
  assert.equal(options.agents, TARGET.agents);
  assert.equal(options.rate, TARGET.rate);
  assert.equal(options.durationMs, 20_000);
  assert.equal(options.client, "raw");
  assert.equal(options.quick, false);
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
