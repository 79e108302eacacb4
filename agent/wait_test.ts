import assert from "node:assert/strict";
import { sleep, Wakeup } from "./wait.ts";

Deno.test("sleep() ends early when the signal aborts", async () => {
  const controller = new AbortController();
  const started = performance.now();
  setTimeout(() => controller.abort(), 20);
  await sleep(5_000, controller.signal);
  assert.ok(performance.now() - started < 1_000);
  await sleep(5_000, controller.signal);
});

Deno.test("Wakeup.wait() waits the full time without a notify", async () => {
  const started = performance.now();
  assert.equal(await new Wakeup().wait(50), false);
  assert.ok(performance.now() - started >= 45);
});

Deno.test("Wakeup.notify() ends a running wait", async () => {
  const wakeup = new Wakeup();
  setTimeout(() => wakeup.notify(), 10);
  const started = performance.now();
  assert.equal(await wakeup.wait(5_000), true);
  assert.ok(performance.now() - started < 1_000);
});

Deno.test("Wakeup.notify() before a wait is kept for it, once", async () => {
  const wakeup = new Wakeup();
  wakeup.notify();
  assert.equal(await wakeup.wait(5_000), true);
  assert.equal(await wakeup.wait(10), false);
});

Deno.test("Wakeup.wait() ends when the signal aborts", async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 10);
  assert.equal(await new Wakeup().wait(5_000, controller.signal), false);
});
