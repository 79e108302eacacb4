/**
 * End to end: a proxyless gRPC client we did not write (`@grpc/grpc-js-xds`)
 * gets its configuration from the real server through a real agent's local
 * xDS endpoint (plaintext on loopback, relayed over mTLS), and balances
 * calls over two echo backends registered by two real agents. Then: one
 * agent leaves, the server restarts, the client rides both out.
 *
 * grpc-js-xds registers its resolver for the whole process and reads its
 * bootstrap once, so everything happens in one test.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import * as grpcXds from "@grpc/grpc-js-xds";
import { connect } from "node:tls";
import { ECHO_METHOD, EchoFleet } from "./echo_backend.ts";
import { ServerProc, startAgent, tempDir, waitFor } from "./harness.ts";

const ECHO = ECHO_METHOD;
const raw = (b: Buffer) => b;

/**
 * A 1 s heartbeat (TTL 3 s): nothing here tests staleness, and a shorter TTL let a busy machine
 * mark the agents stale mid-test, emptying the client's endpoints.
 */
function agentConfig(node: string, port: number): string {
  return `
node: {name: ${node}, address: 127.0.0.1, labels: {region: r1, zone: z1}}
heartbeat: {interval: 1s}
services:
  - name: echo
    port: ${port}
    protocol: grpc
`;
}

/** One call with a short deadline: the xDS client is silent on failure. */
function call(client: grpc.Client, deadlineMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      ECHO,
      raw,
      raw,
      Buffer.from("ping"),
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (error: grpc.ServiceError | null, reply?: Buffer) =>
        error ? reject(error) : resolve(reply!.toString()),
    );
  });
}

async function calls(client: grpc.Client, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const who = await call(client);
    counts.set(who, (counts.get(who) ?? 0) + 1);
  }
  return counts;
}

/**
 * Whether the server's gRPC port completes an mTLS handshake with the
 * agent's identity; resolves with the error otherwise. A failure here is the
 * server's, and a clearer message than a client silently waiting.
 */
async function grpcHandshake(grpcAddr: string, dataDir: string): Promise<string | null> {
  const id = `${dataDir}/identity`;
  const [key, cert, ca] = await Promise.all(
    ["key.pem", "cert.pem", "bundle.pem"].map((f) => Deno.readTextFile(`${id}/${f}`)),
  );
  const [host, port] = grpcAddr.split(":");
  return await new Promise((resolve) => {
    const socket = connect({
      host,
      port: Number(port),
      key,
      cert,
      ca,
      servername: "localhost",
      ALPNProtocols: ["h2"],
    }, () => {
      socket.destroy();
      resolve(null);
    });
    socket.on("error", (error) => resolve(error.message));
  });
}

interface ProxyEntry {
  node: string;
  connectedAt: string;
  kind: string;
  types: { typeUrl: string; inSync: boolean }[];
}

/** The proxyless entry relayed by vm-a, once it has every type in sync. */
async function syncedClient(server: ServerProc): Promise<ProxyEntry | undefined> {
  const res = await server.api("GET", "/v1/proxies");
  if (res.status !== 200) return undefined;
  const items = res.body.items as ProxyEntry[];
  return items.find((p) =>
    p.kind === "proxyless" && p.node === "vm-a" && p.types.length >= 4 &&
    p.types.every((t) => t.inSync)
  );
}

Deno.test("proxyless gRPC through the agent's local xDS endpoint: balance, leave, server restart", async () => {
  const started = performance.now();
  const dir = await tempDir("xds-e2e");
  let server = await ServerProc.start(dir, ["--push-debounce", "20ms"]);
  const info = JSON.parse(await Deno.readTextFile(`${dir}/server.json`));
  const ports = { http: info.http, https: info.https, grpc: info.grpc } as Record<string, string>;
  const fleet = new EchoFleet();
  const backendA = await fleet.start("A");
  const backendB = await fleet.start("B");
  const xdsArgs = ["--xds-server", ports.grpc!, "--local-xds-addr", "127.0.0.1:0"];
  const a = await startAgent("vm-a", server, agentConfig("vm-a", backendA.port), {
    joinToken: await server.joinToken(),
    extraArgs: xdsArgs,
  });
  const b = await startAgent("vm-b", server, agentConfig("vm-b", backendB.port), {
    joinToken: await server.joinToken(),
    extraArgs: xdsArgs,
  });
  let client: grpc.Client | undefined;
  try {
    const state = await waitFor("agent A's local xDS address", async () => {
      const s = JSON.parse(await Deno.readTextFile(`${a.dataDir}/agent.json`));
      return typeof s.xds === "string" ? s : undefined;
    });
    assert.match(state.xds, /^127\.0\.0\.1:\d+$/);
    for (const id of ["echo@vm-a", "echo@vm-b"]) {
      await waitFor(`${id} healthy`, async () => (await server.instance(id))?.health === "healthy");
    }

    const handshake = await grpcHandshake(ports.grpc!, a.dataDir);
    assert.equal(
      handshake,
      null,
      `the server's gRPC port refuses an mTLS handshake with the agent's certificate (${handshake}); the relay cannot work until the server serves TLS there`,
    );

    Deno.env.set(
      "GRPC_XDS_BOOTSTRAP_CONFIG",
      JSON.stringify({
        xds_servers: [{
          server_uri: state.xds,
          channel_creds: [{ type: "insecure" }],
          server_features: ["xds_v3"],
        }],
        node: { id: "client-1", locality: {} },
      }),
    );
    grpcXds.register();
    // Subchannels owned by this channel, closed with it (see the end of the test).
    client = new grpc.Client("xds:///echo.default", grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
    });
    const c = client;

    // Balanced over both backends.
    await waitFor("a first call through xDS", () => call(c).then(() => true), 10_000);
    await waitFor("both backends in the client's config", async () => {
      const counts = await calls(c, 40);
      return (counts.get("A") ?? 0) > 0 && (counts.get("B") ?? 0) > 0 ? counts : undefined;
    }, 10_000);

    // B leaves (SIGTERM deregisters it): soon every call goes to A.
    const leftAt = performance.now();
    await b.proc.stop("SIGTERM");
    await waitFor("all calls on A after B left", async () => {
      const counts = await calls(c, 10);
      return counts.get("A") === 10;
    }, 5_000);
    const leaveMs = performance.now() - leftAt;
    assert.ok(leaveMs < 5_000, `B drained in ${Math.round(leaveMs)} ms`);

    // The server sees the client, relayed by vm-a, as proxyless and in sync.
    const proxy = await waitFor("the client in /v1/proxies", () => syncedClient(server), 5_000);
    assert.deepEqual(
      proxy.types.map((t) => t.typeUrl.slice(t.typeUrl.lastIndexOf(".") + 1)).sort(),
      ["Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration"],
    );

    // The server restarts on the same ports: meanwhile the client keeps its last config.
    await server.proc.stop("SIGTERM");
    const stoppedAt = Date.now();
    const down = await calls(c, 10);
    assert.equal(down.get("A"), 10, "calls work while the server is down");
    server = await ServerProc.start(dir, [
      "--http-addr",
      ports.http!,
      "--https-addr",
      ports.https!,
      "--grpc-addr",
      ports.grpc!,
      "--push-debounce",
      "20ms",
    ]);
    const s = server;
    // The client's ADS stream comes back through the relay: it resyncs.
    const again = await waitFor("the client back in /v1/proxies", () => syncedClient(s), 15_000);
    assert.ok(Date.parse(again.connectedAt) > stoppedAt, "a new stream, after the restart");
    assert.equal((await calls(c, 10)).get("A"), 10);
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds < 45, `the test took ${seconds.toFixed(1)} s`);
  } catch (error) {
    console.error(`--- agent A ---\n${a.proc.output}\n--- server ---\n${server.proc.output}`);
    throw error;
  } finally {
    client?.close();
    await Promise.all([a.proc.stop(), b.proc.stop(), server.proc.stop()]);
    // The echo backends are left to the end of the test process, as in tests/policy_e2e_test.ts
    // (shutting them down can crash Deno's HTTP/2).
    for (const d of [dir, a.dataDir, b.dataDir]) {
      await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  }
});
