import assert from "node:assert/strict";
import type { CheckConfig } from "../core/agent_config.ts";
import type { CheckOutcome } from "./checks.ts";
import { CheckMonitor } from "./monitor.ts";

const CHECK: CheckConfig = {
  target: { kind: "exec", command: ["true"] },
  intervalMs: 100,
  timeoutMs: 100,
  healthyThreshold: 1,
  unhealthyThreshold: 2,
};

/** A probe that returns the scripted outcomes in turn, then repeats the last. */
function scripted(...oks: boolean[]) {
  let i = 0;
  return (): Promise<CheckOutcome> => {
    const ok = oks[Math.min(i++, oks.length - 1)]!;
    return Promise.resolve({ ok, output: `run ${i}` });
  };
}

Deno.test("CheckMonitor.probe() takes the first outcome, then applies thresholds", async () => {
  const monitor = new CheckMonitor("web", CHECK, scripted(true, false, false, true));
  const signal = new AbortController().signal;
  assert.deepEqual(monitor.report, { status: "failing", output: "Not run yet" });
  assert.equal(await monitor.probe(signal), undefined);
  assert.deepEqual(monitor.report, { status: "passing", output: "run 1" });
  assert.equal(await monitor.probe(signal), undefined, "one failure is below the threshold");
  assert.deepEqual(monitor.report, { status: "passing", output: "run 2" });
  assert.equal(await monitor.probe(signal), "passing", "the second failure flips it");
  assert.equal(monitor.report.status, "failing");
  assert.equal(await monitor.probe(signal), "failing");
  assert.equal(monitor.report.status, "passing");
});

Deno.test("CheckMonitor.loop() reports changes until the signal aborts", async () => {
  const monitor = new CheckMonitor(
    "web",
    { ...CHECK, unhealthyThreshold: 1 },
    scripted(true, false),
  );
  const controller = new AbortController();
  await monitor.probe(controller.signal);
  const changes: string[] = [];
  const loop = monitor.loop(controller.signal, (previous) => {
    changes.push(`${previous}->${monitor.report.status}`);
    controller.abort();
  });
  await loop;
  assert.deepEqual(changes, ["passing->failing"]);
});
