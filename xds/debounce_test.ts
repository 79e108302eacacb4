import assert from "node:assert/strict";
import { Debouncer, type Timers } from "./debounce.ts";

/** Timers that run only when the test moves the clock. */
class FakeTimers implements Timers {
  at = 0;
  #next = 1;
  readonly #pending = new Map<number, { due: number; fn: () => void }>();
  now(): number {
    return this.at;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#pending.set(id, { due: this.at + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#pending.delete(handle as number);
  }
  /** Moves the clock by `ms`, running what falls due. */
  advance(ms: number): void {
    this.at += ms;
    for (const [id, t] of [...this.#pending].sort(([, a], [, b]) => a.due - b.due)) {
      if (t.due > this.at) continue;
      this.#pending.delete(id);
      t.fn();
    }
  }
}

function debouncer(timing = { debounceMs: 100, maxDelayMs: 1_000 }) {
  const timers = new FakeTimers();
  const fired: { value: string[]; firstAt: number; at: number }[] = [];
  const d = new Debouncer<string[]>({
    merge: (a, b) => [...a, ...b],
    fire: (value, firstAt) => fired.push({ value, firstAt, at: timers.at }),
    timing: () => timing,
    timers,
  });
  return { d, timers, fired };
}

Deno.test("Debouncer merges a burst and fires once it pauses", () => {
  const { d, timers, fired } = debouncer();
  d.add(["a"]);
  timers.advance(50);
  d.add(["b"]);
  timers.advance(99);
  assert.equal(fired.length, 0, "still within the quiet period of the second change");
  timers.advance(1);
  assert.deepEqual(fired, [{ value: ["a", "b"], firstAt: 0, at: 150 }]);
});

Deno.test("Debouncer never holds a steady trickle longer than the maximum delay", () => {
  const { d, timers, fired } = debouncer();
  for (let i = 0; i < 30; i++) {
    d.add([String(i)]);
    timers.advance(50);
  }
  assert.equal(fired[0]!.at, 1_000);
  assert.equal(fired[0]!.firstAt, 0);
  assert.equal(fired[0]!.value.length, 20);
});

Deno.test("Debouncer.flush() fires now; stop() drops what is pending and ignores later values", () => {
  const { d, timers, fired } = debouncer();
  d.add(["a"]);
  d.flush();
  assert.deepEqual(fired.map((f) => f.value), [["a"]]);
  d.flush();
  assert.equal(fired.length, 1, "nothing pending: nothing fired");
  d.add(["b"]);
  d.stop();
  d.add(["c"]);
  timers.advance(10_000);
  assert.equal(fired.length, 1);
});
