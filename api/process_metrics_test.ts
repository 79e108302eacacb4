import assert from "node:assert/strict";
import client from "prom-client";
import { registerProcessMetrics } from "./process_metrics.ts";

Deno.test("registerProcessMetrics() sees a blocked event loop and drops the families Deno cannot fill", async () => {
  const registry = new client.Registry();
  const probe = registerProcessMetrics(registry, { probeMs: 20 });
  try {
    await new Promise((r) => setTimeout(r, 60));
    const start = performance.now();
    while (performance.now() - start < 300) {
      // Busy: the loop cannot run the probe's timer.
    }
    await new Promise((r) => setTimeout(r, 60));
    const families = await registry.getMetricsAsJSON();
    const text = await registry.metrics();
    const sum = Number(/^ironmesh_event_loop_lag_seconds_sum (\S+)$/m.exec(text)?.[1]);
    assert.ok(sum >= 0.25, `lag sum ${sum} should include the 300 ms block`);
    for (const family of families) {
      assert.ok(family.values.length > 0, `${family.name} has no samples`);
    }
    const names = families.map((f) => f.name);
    for (
      const name of [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
      ]
    ) {
      assert.ok(names.includes(name), `${name} missing`);
    }
    assert.ok(
      !names.some((n) => n.startsWith("nodejs_eventloop_lag")),
      "the lag families Deno cannot fill",
    );
    assert.ok(!names.includes("nodejs_gc_duration_seconds"));
  } finally {
    probe.stop();
  }
});
