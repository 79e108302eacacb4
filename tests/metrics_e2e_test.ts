/**
 * The whole `/metrics` exposition of a running server passes `promtool check
 * metrics` (Prometheus' own linter, Debian's `prometheus` package), and the
 * process families operators look for first carry real values.
 */
import assert from "node:assert/strict";
import { ServerProc, tempDir } from "./harness.ts";

Deno.test("server /metrics passes promtool check metrics and has process, event-loop and build families", async () => {
  const dir = await tempDir("metrics");
  const before = Date.now() / 1000;
  const server = await ServerProc.start(dir);
  try {
    // Traffic of several kinds first, so labelled families have samples too.
    await server.api("GET", "/v1/services");
    await server.api("GET", "/v1/nodes/nope");
    await server.api("GET", "/v1/services", { token: "wrong" });
    // The lag probe has run a few times.
    await new Promise((r) => setTimeout(r, 500));
    const res = await server.api("GET", "/metrics", { token: null });
    assert.equal(res.status, 200);
    const text = res.body as string;

    const promtool = new Deno.Command("promtool", {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = promtool.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
    const out = await promtool.output();
    const dec = new TextDecoder();
    const report = dec.decode(out.stdout) + dec.decode(out.stderr);
    assert.equal(out.code, 0, `promtool check metrics:\n${report}`);
    assert.equal(report.trim(), "", "promtool has no lint findings");

    const value = (name: string) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
      assert.ok(m, `${name} is missing:\n${text}`);
      return Number(m[1]);
    };
    assert.ok(value("process_resident_memory_bytes") > 10_000_000);
    assert.ok(value("process_cpu_seconds_total") > 0);
    assert.ok(value("process_open_fds") > 3);
    const started = value("process_start_time_seconds");
    assert.ok(started >= Math.floor(before) - 1 && started <= Date.now() / 1000, `${started}`);
    assert.ok(value("ironmesh_event_loop_lag_seconds_count") >= 3);
    assert.match(text, /^ironmesh_build_info\{version="0\.1\.0",deno="[^"]+"\} 1$/m);
    // Every process and runtime family the server exports has a sample.
    for (const [, family] of text.matchAll(/^# TYPE ((?:process|nodejs)_\w+) /gm)) {
      assert.match(text, new RegExp(`^${family}(_\\w+)?(\\{| )`, "m"), `${family} has no samples`);
    }
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
