import assert from "node:assert/strict";
import { backoffDelay, jitter, retryCapMs } from "./backoff.ts";

Deno.test("jitter() stays within the fraction either way", () => {
  assert.equal(jitter(5_000, 0.1, () => 0), 4_500);
  assert.equal(jitter(5_000, 0.1, () => 0.5), 5_000);
  assert.equal(jitter(5_000, 0.1, () => 0.999999), 5_500);
  for (let i = 0; i < 1_000; i++) {
    const ms = jitter(5_000, 0.1);
    assert.ok(ms >= 4_500 && ms <= 5_500, `${ms} out of range`);
  }
});

Deno.test("backoffDelay() doubles its ceiling from 200ms up to the cap", () => {
  const top = () => 1;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 20, 1_000].map((n) => backoffDelay(n, {}, top)),
    [200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000, 30_000],
  );
  assert.equal(backoffDelay(10, { baseMs: 100, capMs: 1_000 }, top), 1_000);
});

Deno.test("backoffDelay() spreads delays over the whole range (full jitter)", () => {
  assert.equal(backoffDelay(3, {}, () => 0), 0);
  assert.equal(backoffDelay(3, {}, () => 0.5), 800);
  let seeded = 42;
  const random = () => (seeded = (seeded * 16807) % 2147483647) / 2147483647;
  const delays = Array.from({ length: 2_000 }, () => backoffDelay(4, {}, random));
  assert.ok(delays.every((d) => d >= 0 && d <= 3_200));
  assert.ok(delays.some((d) => d < 800) && delays.some((d) => d > 2_400), "spread over the range");
});

Deno.test("retryCapMs() is the interval, at least 200ms and at most 30s", () => {
  assert.equal(retryCapMs(5_000), 5_000);
  assert.equal(retryCapMs(100), 200);
  assert.equal(retryCapMs(600_000), 30_000);
});
