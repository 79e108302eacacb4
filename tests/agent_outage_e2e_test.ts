/**
 * End to end, issue 12: the agent's local xDS endpoint rides out a server
 * outage. Real server, real agents, real proxyless clients
 * (`@grpc/grpc-js-xds`, each in its own process, `xds_caller.ts`): one
 * through agent vm-a all along, one through agent vm-c, which is restarted
 * while the server is down and so configures its new client from its cache
 * file.
 *
 * The server is SIGKILLed for 60 s and started again on the same data and
 * ports; a drain made 1 s after it is ready must change both clients'
 * traffic within 2 s, and no call may fail meanwhile.
 */
import assert from "node:assert/strict";
import { EchoFleet } from "./echo_backend.ts";
import { Proc, ROOT, ServerProc, startAgent, tempDir, waitFor } from "./harness.ts";

const OUTAGE_MS = 60_000;

function agentConfig(node: string, port?: number): string {
  return `
node: {name: ${node}, address: 127.0.0.1}
heartbeat: {interval: 1s}
${port === undefined ? "" : `services:\n  - {name: echo, port: ${port}, protocol: grpc}`}
`;
}

/** A loopback port free right now, for an address that must stay the same across restarts. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function bootstrap(xds: string): string {
  return JSON.stringify({
    xds_servers: [{
      server_uri: xds,
      channel_creds: [{ type: "insecure" }],
      server_features: ["xds_v3"],
    }],
    node: { id: "outage-client", locality: {} },
  });
}

interface CallerCounts {
  ok: number;
  failed: number;
  waiting: number;
  byBackend: Record<string, number>;
  lastAt: Record<string, number>;
  lastError: string;
}

/** The latest counts a caller process printed. */
function counts(caller: Proc): CallerCounts | undefined {
  const line = caller.output.split("\n").filter((l) => l.startsWith("{")).at(-1);
  return line === undefined ? undefined : JSON.parse(line);
}

Deno.test("agents ride out a 60 s server outage: no failed call, no client stream ended, a drain reaches clients within 2 s, a restarted agent serves from disk", async () => {
  const dir = await tempDir("outage");
  let server = await ServerProc.start(dir, ["--push-debounce", "20ms"]);
  const info = JSON.parse(await Deno.readTextFile(`${dir}/server.json`));
  const fleet = new EchoFleet();
  const backendA = await fleet.start("A");
  const backendB = await fleet.start("B");
  const xdsA = `127.0.0.1:${freePort()}`;
  const xdsC = `127.0.0.1:${freePort()}`;
  const args = (xds: string) => [
    "--xds-server",
    info.grpc,
    "--local-xds-addr",
    xds,
    "--dns-addr",
    "127.0.0.1:0",
    "--metrics-addr",
    "127.0.0.1:0",
  ];
  const a = await startAgent("vm-a", server, agentConfig("vm-a", backendA.port), {
    joinToken: await server.joinToken(),
    extraArgs: args(xdsA),
  });
  const b = await startAgent("vm-b", server, agentConfig("vm-b", backendB.port), {
    joinToken: await server.joinToken(),
    extraArgs: args("127.0.0.1:0"),
  });
  let c = await startAgent("vm-c", server, agentConfig("vm-c"), {
    joinToken: await server.joinToken(),
    extraArgs: [...args(xdsC), "--keep-instances-on-exit"],
  });
  const callers: Proc[] = [];
  const caller = (xds: string) => {
    const p = new Proc("caller", ["run", "-A", `${ROOT}tests/xds_caller.ts`, "echo.default"], {
      GRPC_XDS_BOOTSTRAP_CONFIG: bootstrap(xds),
    });
    callers.push(p);
    return p;
  };
  const both = (p: Proc) => {
    const n = counts(p);
    return n !== undefined && (n.byBackend.A ?? 0) > 0 && (n.byBackend.B ?? 0) > 0;
  };
  try {
    for (const id of ["echo@vm-a", "echo@vm-b"]) {
      await waitFor(`${id} healthy`, async () => (await server.instance(id))?.health === "healthy");
    }
    // vm-c's cache learns the client's configuration while the server is up.
    const warm = caller(xdsC);
    await waitFor(
      "the first caller through vm-c served by both backends",
      () => both(warm),
      20_000,
    );
    await warm.stop();
    // The client through vm-a calls all along.
    const steady = caller(xdsA);
    await waitFor("the caller through vm-a served by both backends", () => both(steady), 20_000);

    // The outage.
    await server.proc.stop("SIGKILL");
    const killedAt = Date.now();
    // vm-c restarts meanwhile: a new client through it is configured from the cache on disk.
    await c.proc.stop("SIGTERM");
    c = await startAgent("vm-c", server, agentConfig("vm-c"), {
      dataDir: c.dataDir,
      extraArgs: [...args(xdsC), "--keep-instances-on-exit"],
    });
    await c.proc.waitForLine(/xDS cache loaded/);
    const fromDisk = caller(xdsC);
    await waitFor("the new caller served through the restarted vm-c", () => both(fromDisk), 30_000);
    assert.ok(Date.now() - killedAt < OUTAGE_MS, "configured from disk during the outage");
    await new Promise((r) => setTimeout(r, Math.max(0, killedAt + OUTAGE_MS - Date.now())));

    server = await ServerProc.start(dir, [
      "--http-addr",
      info.http,
      "--https-addr",
      info.https,
      "--grpc-addr",
      info.grpc,
      "--push-debounce",
      "20ms",
    ]);
    await new Promise((r) => setTimeout(r, 1_000));
    const drain = await server.api("PATCH", "/v1/instances/echo@vm-b", {
      body: { draining: true },
    });
    assert.equal(drain.status, 200, JSON.stringify(drain.body));
    const drainedAt = Date.now();
    const before = [counts(steady)!, counts(fromDisk)!];
    await new Promise((r) => setTimeout(r, 4_000));
    for (const [i, p] of [steady, fromDisk].entries()) {
      const n = counts(p)!;
      const lastB = n.lastAt.B ?? 0;
      console.log(
        `${i === 0 ? "vm-a" : "vm-c"}: last call to B ${lastB - drainedAt} ms after the drain`,
      );
      assert.ok(
        lastB - drainedAt <= 2_000,
        `traffic changed ${lastB - drainedAt} ms after the drain`,
      );
      assert.ok(
        (n.byBackend.A ?? 0) > (before[i]!.byBackend.A ?? 0) + 50,
        "the client kept calling",
      );
      assert.equal(n.failed, 0, `no call failed (${n.lastError})`);
    }
    // The steady client's stream through vm-a never ended: opened once, never closed.
    assert.equal(a.proc.output.match(/Local xDS client stream opened/g)?.length, 1, a.proc.output);
    assert.equal(a.proc.output.match(/Local xDS client stream ended/g)?.length ?? 0, 0);
    for (const agent of [a, b, c]) assert.ok(!agent.proc.output.includes("nghttp2"));
  } catch (error) {
    console.error(`--- vm-a ---\n${a.proc.output}\n--- vm-c ---\n${c.proc.output}`);
    console.error(`--- server ---\n${server.proc.output}`);
    for (const p of callers) console.error(`--- caller ---\n${p.output.slice(-2_000)}`);
    throw error;
  } finally {
    await Promise.all([...callers.map((p) => p.stop()), a.proc.stop(), b.proc.stop()]);
    await c.proc.stop();
    await server.proc.stop();
    // The echo backends are left to the end of the test process (see tests/echo_backend.ts).
    for (const d of [dir, a.dataDir, b.dataDir, c.dataDir]) {
      await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  }
});
