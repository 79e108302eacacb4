import assert from "node:assert/strict";
import { Histogram } from "./histogram.ts";

Deno.test("Histogram.quantile() is within 1% of the exact value", () => {
  const histogram = new Histogram();
  const values = Array.from({ length: 10_000 }, (_, i) => (i + 1) / 100);
  for (const v of values) histogram.record(v);
  for (const q of [0.5, 0.9, 0.99]) {
    const exact = values[Math.ceil(q * values.length) - 1]!;
    const reported = histogram.quantile(q);
    assert.ok(reported >= exact, `q=${q}: ${reported} < ${exact}`);
    assert.ok(reported <= exact * 1.01, `q=${q}: ${reported} > ${exact} + 1%`);
  }
  assert.equal(histogram.quantile(1), 100);
  assert.equal(histogram.maxMs, 100);
});

Deno.test("Histogram.merge() equals recording everything in one histogram", () => {
  const a = new Histogram();
  const b = new Histogram();
  const all = new Histogram();
  for (let i = 0; i < 1_000; i++) {
    const v = (i * 7919) % 500 / 10;
    (i % 2 ? a : b).record(v);
    all.record(v);
  }
  const merged = Histogram.fromJSON(JSON.parse(JSON.stringify(a)));
  merged.merge(b.toJSON());
  assert.deepEqual(merged.toJSON(), all.toJSON());
  assert.equal(merged.quantile(0.99), all.quantile(0.99));
});

Deno.test("Histogram keeps values outside its range in its edge buckets", () => {
  const histogram = new Histogram();
  assert.equal(histogram.quantile(0.5), 0);
  histogram.record(0);
  histogram.record(5_000_000);
  assert.equal(histogram.count, 2);
  assert.equal(histogram.quantile(0.5), 0.001);
  assert.equal(histogram.quantile(1), 5_000_000);
});
