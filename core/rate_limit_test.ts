import assert from "node:assert/strict";
import { FakeClock } from "./clock.ts";
import { TokenBucket } from "./rate_limit.ts";

Deno.test("TokenBucket.take() grants a burst, then the sustained rate", () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(clock, 10, 3);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take()], [0, 0, 0]);
  assert.equal(bucket.take(), 100, "the next token comes in 1/10 s");
  clock.advance(100);
  assert.equal(bucket.take(), 0);
  clock.advance(10_000);
  assert.deepEqual(
    [bucket.take(), bucket.take(), bucket.take()],
    [0, 0, 0],
    "refills to the burst only",
  );
  assert.ok(bucket.take() > 0);
});
