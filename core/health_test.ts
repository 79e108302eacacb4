import assert from "node:assert/strict";
import { FakeClock } from "./clock.ts";
import { type CheckTrack, instanceHealth, nodeLiveness, observeCheck } from "./health.ts";

Deno.test("observeCheck() takes the first outcome as the status", () => {
  const t = { healthyThreshold: 2, unhealthyThreshold: 3 };
  assert.deepEqual(observeCheck(undefined, false, t), { status: "failing", streak: 0 });
  assert.deepEqual(observeCheck(undefined, true, t), { status: "passing", streak: 0 });
});

Deno.test("observeCheck() needs unhealthyThreshold failures in a row to fail", () => {
  const t = { healthyThreshold: 2, unhealthyThreshold: 3 };
  let track: CheckTrack = observeCheck(undefined, true, t);
  track = observeCheck(track, false, t);
  track = observeCheck(track, false, t);
  assert.equal(track.status, "passing");
  track = observeCheck(track, true, t);
  assert.deepEqual(track, { status: "passing", streak: 0 }, "a success resets the failure run");
  for (let i = 0; i < 3; i++) track = observeCheck(track, false, t);
  assert.equal(track.status, "failing");
  track = observeCheck(track, true, t);
  assert.equal(track.status, "failing");
  track = observeCheck(track, true, t);
  assert.equal(track.status, "passing");
});

Deno.test("nodeLiveness() turns stale after the TTL and reaps after the reap period", () => {
  const clock = new FakeClock();
  const last = clock.now();
  const times = { ttlMs: 15_000, reapAfterMs: 3_600_000 };
  assert.equal(nodeLiveness(last, clock.now(), times), "alive");
  clock.advance(15_000);
  assert.equal(nodeLiveness(last, clock.now(), times), "alive", "exactly the TTL is still alive");
  clock.advance(1);
  assert.equal(nodeLiveness(last, clock.now(), times), "stale");
  clock.advance(3_600_000);
  assert.equal(nodeLiveness(last, clock.now(), times), "reap");
});

Deno.test("instanceHealth() lets drain win, then node staleness, then the check", () => {
  const base = {
    check: "passing",
    instanceDraining: false,
    nodeDraining: false,
    nodeStatus: "alive",
  } as const;
  assert.equal(instanceHealth(base), "healthy");
  assert.equal(instanceHealth({ ...base, check: "none" }), "healthy");
  assert.equal(instanceHealth({ ...base, check: "failing" }), "unhealthy");
  assert.equal(instanceHealth({ ...base, nodeStatus: "stale" }), "unhealthy");
  assert.equal(instanceHealth({ ...base, nodeStatus: "stale", nodeDraining: true }), "draining");
  assert.equal(instanceHealth({ ...base, check: "failing", instanceDraining: true }), "draining");
});
