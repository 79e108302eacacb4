import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { parseAgentConfig } from "../core/agent_config.ts";
import { jsonLogger, type Logger, silentLogger } from "../core/log.ts";
import { runAgent } from "./agent.ts";
import { openTestAuthority } from "../ca/_testing.ts";
import { normalizeSerial } from "../ca/identity.ts";
import { nodeCalls, withRealServer } from "./_real_server_testing.ts";
import { HOST, waitFor } from "./_testing.ts";
import {
  AdsClient,
  agentMaterial,
  CDS,
  EDS,
  LDS,
  SDS,
  serverLeaf,
  TcpCut,
  XdsServerDouble,
} from "./_xds_relay_testing.ts";
import {
  defaultXdsServer,
  parseLocalXdsAddr,
  startXdsRelay,
  type XdsRelay,
  type XdsRelayOptions,
} from "./xds_relay.ts";
// Tests may reach sideways: the doubles speak real protobuf, checked against Envoy's descriptor.
import { decodeStrict, encodeStrict } from "../xds/proto/codec.ts";

const codec = { decodeStrict, encodeStrict };
const NODE = { id: "app-1", cluster: "app", locality: {} };

function relayAddress(relay: XdsRelay): string {
  return `127.0.0.1:${relay.address.port}`;
}

/** A logger that keeps its lines, to wait for what the relay says. */
function lines(): { log: Logger; lines: string[] } {
  const kept: string[] = [];
  return { log: jsonLogger((l) => kept.push(l), { level: "debug" }), lines: kept };
}

async function setUp(options: Partial<XdsRelayOptions> = {}) {
  const mesh = await openTestAuthority("ironmesh.test");
  const ca = mesh.authority;
  const server = await XdsServerDouble.start(codec, ca);
  const cut = new TcpCut(server.port);
  cut.up();
  const relay = await startXdsRelay({
    listen: { host: "127.0.0.1", port: 0 },
    upstream: cut.address,
    material: await agentMaterial(ca, "web"),
    log: silentLogger,
    ...options,
  });
  return {
    ca,
    server,
    cut,
    relay,
    async finish() {
      await relay.close();
      cut.down();
      server.stop();
      await mesh.close();
    },
  };
}

Deno.test("xDS relay serves the server's resources over mTLS with the agent's certificate", async () => {
  const { server, relay, finish } = await setUp();
  server.set(LDS, "echo.default", {});
  const app = AdsClient.sotw(codec, relayAddress(relay));
  try {
    app.send({ node: NODE, type_url: LDS });
    await waitFor(() => app.responses.length === 1, "the listeners");
    const first = app.responses[0]!;
    assert.equal(first.type_url, LDS);
    assert.equal(first.version_info, server.version);
    assert.deepEqual(first.resources, [{ "@type": LDS, name: "echo.default" }]);
    assert.equal(server.streams.length, 1);
    assert.equal(server.streams[0]!.san, "URI:spiffe://ironmesh.test/ns/default/sa/web");
    assert.deepEqual(server.streams[0]!.requests, [{ node: NODE, type_url: LDS }]);
    app.end();
  } finally {
    app.close();
    await finish();
  }
});

Deno.test("xDS relay: the client's ACKs and NACKs reach the server as answers to its own nonces", async () => {
  const { server, relay, finish } = await setUp();
  server.set(CDS, "a", {});
  const app = AdsClient.sotw(codec, relayAddress(relay));
  try {
    app.send({ node: NODE, type_url: CDS });
    await waitFor(() => app.responses.length === 1, "the clusters");
    const upstream = server.streams[0]!;
    const ack = (r: (typeof app.responses)[number]) => ({
      version_info: r.version_info!,
      type_url: CDS,
      response_nonce: r.nonce!,
    });
    app.send(ack(app.responses[0]!));
    await waitFor(() => upstream.requests.length === 2, "the ACK upstream");
    // The server's nonce was "1"; the relay's nonce is its own, and translated back.
    assert.deepEqual(upstream.requests[1], {
      version_info: "1",
      type_url: CDS,
      response_nonce: "1",
    });

    server.set(CDS, "b", {});
    await waitFor(() => app.responses.length === 2, "the push");
    assert.deepEqual(app.responses[1]!.resources!.map((r) => r.name).sort(), ["a", "b"]);
    app.send({ ...ack(app.responses[1]!), version_info: "1", error_detail: { message: "no b" } });
    await waitFor(() => upstream.requests.length === 3, "the NACK upstream");
    assert.deepEqual(upstream.requests[2], {
      version_info: "1",
      type_url: CDS,
      response_nonce: "2",
      error_detail: { message: "no b" },
    });
    app.end();
  } finally {
    app.close();
    await finish();
  }
});

Deno.test("xDS relay keeps clients' streams through a server outage and serves them from its cache", async () => {
  const log = lines();
  const { server, cut, relay, finish } = await setUp({ log: log.log });
  server.set(LDS, "echo.default", { stat_prefix: "v1" });
  server.set(CDS, "echo", {});
  const first = AdsClient.sotw(codec, relayAddress(relay));
  let second: ReturnType<typeof AdsClient.sotw> | undefined;
  try {
    first.send({ node: NODE, type_url: LDS });
    first.send({ node: NODE, type_url: CDS });
    await waitFor(() => first.responses.length === 2, "listeners and clusters");
    await waitFor(() => relay.stats().upstreamLive === 1, "the upstream stream answering");

    // The server goes away: the client's stream stays, a new client is answered from the cache.
    cut.down();
    await waitFor(
      () => log.lines.some((l) => l.includes("serving from the cache")),
      "the relay noticing",
    );
    second = AdsClient.sotw(codec, relayAddress(relay));
    second.send({ node: NODE, type_url: LDS });
    await waitFor(() => second!.responses.length === 1, "an answer from the cache");
    assert.deepEqual(second.responses[0]!.resources, first.responses[0]!.resources);
    assert.equal(second.responses[0]!.version_info, first.responses[0]!.version_info);
    second.send({
      version_info: second.responses[0]!.version_info!,
      type_url: LDS,
      response_nonce: second.responses[0]!.nonce!,
    });

    // A change made meanwhile reaches both clients once the server is back, on the same streams.
    server.set(LDS, "echo.default", { stat_prefix: "v2" });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(relay.stats().streams, 2, "no client stream ended");
    const before = server.streams.length;
    cut.up();
    await waitFor(
      () =>
        [first, second!].every((c) =>
          c.responses.some((r) => r.resources?.[0]?.stat_prefix === "v2")
        ),
      "the current listener on both streams",
      5_000,
    );
    assert.equal(relay.stats().total, 2, "the clients never reconnected");
    // The second client's subscription went up again with the version it held from the cache.
    const replayed = server.streams.slice(before).flatMap((s) => s.requests) as {
      type_url?: string;
      version_info?: string;
      node?: unknown;
    }[];
    assert.ok(
      replayed.some((r) =>
        r.type_url === LDS && r.version_info === first.responses[0]!.version_info &&
        r.node !== undefined
      ),
      JSON.stringify(replayed),
    );
    assert.ok(log.lines.some((l) => l.includes("xDS stream to the server restored")));
    first.end();
    second.end();
    await first.status; // The relay ends a stream the client ended.
  } finally {
    first.close();
    second?.close();
    await finish();
  }
});

Deno.test("xDS relay: a server unreachable from the start leaves the client waiting, not failed", async () => {
  const { server, cut, relay, finish } = await setUp();
  server.set(CDS, "a", {});
  cut.down();
  const app = AdsClient.sotw(codec, relayAddress(relay));
  let ended = false;
  app.status.then(() => ended = true);
  try {
    app.send({ node: NODE, type_url: CDS });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(ended, false, "the stream is still open");
    assert.equal(app.responses.length, 0, "nothing cached, nothing sent");
    cut.up();
    await waitFor(() => app.responses.length === 1, "the clusters once the server listens", 5_000);
    assert.equal(relay.stats().total, 1);
    app.end();
  } finally {
    app.close();
    await finish();
  }
});

Deno.test("xDS relay writes its cache to disk (0600) and configures clients from it after a restart", async () => {
  const dir = await Deno.makeTempDir();
  const cachePath = `${dir}/xds/cache.json`;
  const { ca, server, cut, relay, finish } = await setUp({ cachePath });
  server.set(LDS, "echo.default", {});
  server.set(EDS, "echo", { endpoints: [{ locality: { zone: "z1" } }] });
  const app = AdsClient.sotw(codec, relayAddress(relay));
  let restarted: XdsRelay | undefined;
  const apps = [app];
  try {
    app.send({ node: NODE, type_url: LDS });
    app.send({ node: NODE, type_url: EDS, resource_names: ["echo"] });
    await waitFor(() => app.responses.length === 2, "listeners and endpoints");
    app.end();
    await relay.close();
    assert.equal((await Deno.stat(cachePath)).mode! & 0o777, 0o600);
    const file = JSON.parse(await Deno.readTextFile(cachePath));
    assert.equal(file.nodes.length, 1);
    assert.deepEqual(file.nodes[0].sotw.map((t: { type: string }) => t.type).sort(), [EDS, LDS]);

    // The agent restarts while the server is down: the cache file configures the client.
    cut.down();
    restarted = await startXdsRelay({
      listen: { host: "127.0.0.1", port: 0 },
      upstream: cut.address,
      material: await agentMaterial(ca, "web"),
      log: silentLogger,
      cachePath,
    });
    const again = AdsClient.sotw(codec, relayAddress(restarted));
    apps.push(again);
    again.send({ node: NODE, type_url: LDS });
    again.send({ node: NODE, type_url: EDS, resource_names: ["echo"] });
    await waitFor(() => again.responses.length === 2, "both types from disk");
    assert.deepEqual(
      again.responses.map((r) => r.version_info),
      app.responses.map((r) => r.version_info),
    );
    assert.deepEqual(again.responses[1]!.resources, [
      { "@type": EDS, cluster_name: "echo", endpoints: [{ locality: { zone: "z1" } }] },
    ]);
    // Another node's client gets nothing from this node's cache.
    const stranger = AdsClient.sotw(codec, relayAddress(restarted));
    apps.push(stranger);
    stranger.send({ node: { ...NODE, id: "other" }, type_url: LDS });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(stranger.responses.length, 0);
    stranger.end();
    again.end();
  } finally {
    for (const a of apps) a.close();
    await restarted?.close();
    await finish();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("xDS relay serves delta xDS: changes and removals, the cache through an outage, versions on reconnect", async () => {
  const { server, cut, relay, finish } = await setUp();
  server.set(CDS, "a", {});
  server.set(CDS, "b", {});
  server.set(EDS, "a", { endpoints: [{ locality: { zone: "z1" } }] });
  const app = AdsClient.delta(codec, relayAddress(relay));
  let late: ReturnType<typeof AdsClient.delta> | undefined;
  type Response = (typeof app.responses)[number];
  const names = (r: Response) => (r.resources ?? []).map((x) => x.name).sort();
  try {
    app.send({ node: NODE, type_url: CDS });
    app.send({ node: NODE, type_url: EDS, resource_names_subscribe: ["a"] });
    await waitFor(() => app.responses.length === 2, "clusters and endpoints");
    const cds = app.responses.find((r) => r.type_url === CDS)!;
    assert.deepEqual(names(cds), ["a", "b"]);
    app.send({ type_url: CDS, response_nonce: cds.nonce! });
    const upstream = server.streams[0]!;
    await waitFor(
      () => upstream.requests.some((r) => (r as { response_nonce?: string }).response_nonce),
      "the ACK upstream",
    );

    server.remove(CDS, "b");
    await waitFor(() => app.responses.length === 3, "the removal");
    assert.deepEqual(app.responses[2]!.removed_resources, ["b"]);

    cut.down();
    await waitFor(() => relay.stats().upstreamLive === 0, "the upstream gone");
    late = AdsClient.delta(codec, relayAddress(relay));
    late.send({ node: NODE, type_url: CDS });
    await waitFor(() => late!.responses.length === 1, "a delta answer from the cache");
    assert.deepEqual(names(late.responses[0]!), ["a"]);

    server.set(CDS, "c", {});
    const before = server.streams.length;
    cut.up();
    await waitFor(() => app.responses.some((r) => names(r).includes("c")), "c", 5_000);
    await waitFor(() => late!.responses.some((r) => names(r).includes("c")), "c, late", 5_000);
    // On the new upstream streams the relay told the server the versions each client has.
    const resumed = server.streams.slice(before).map((s) =>
      s.requests[0] as { type_url?: string; initial_resource_versions?: Record<string, string> }
    );
    assert.ok(
      resumed.some((r) =>
        r.type_url === CDS && Object.keys(r.initial_resource_versions ?? {}).join() === "a"
      ),
      JSON.stringify(resumed),
    );
    // The client got only what changed: "c", not "a" again.
    assert.deepEqual(names(app.responses.at(-1)!), ["c"]);
    app.end();
    late.end();
  } finally {
    app.close();
    late?.close();
    await finish();
  }
});

Deno.test("xDS relay refuses a server outside the mesh roots or without the dialled IP", async () => {
  const mesh = await openTestAuthority("ironmesh.test");
  const stranger = await openTestAuthority("stranger.test");
  const ca = mesh.authority;
  const cases = [
    await serverLeaf(stranger.authority, "127.0.0.1"),
    await serverLeaf(ca, "10.1.2.3"),
  ];
  await stranger.close();
  try {
    for (const serving of cases) {
      const server = await XdsServerDouble.start(codec, ca, serving);
      const log = lines();
      const relay = await startXdsRelay({
        listen: { host: "127.0.0.1", port: 0 },
        upstream: server.address,
        material: await agentMaterial(ca, "web"),
        log: log.log,
      });
      const app = AdsClient.sotw(codec, relayAddress(relay));
      try {
        app.send({ node: NODE, type_url: CDS });
        await waitFor(
          () =>
            log.lines.some((l) =>
              l.includes("xDS stream to the server failed") && /certificate/i.test(l)
            ),
          "the refused handshake",
        );
        assert.equal(server.streams.length, 0, "no stream reached the wrong server");
        assert.equal(relay.stats().streams, 1, "the client's stream is still open");
        app.end();
      } finally {
        app.close();
        await relay.close();
        server.stop();
      }
    }
  } finally {
    await mesh.close();
  }
});

Deno.test("xDS relay: new upstream streams use renewed material, running ones keep theirs", async () => {
  const { ca, server, relay, finish } = await setUp();
  server.set(CDS, "a", {});
  const old = AdsClient.sotw(codec, relayAddress(relay));
  const renewed = AdsClient.sotw(codec, relayAddress(relay));
  try {
    old.send({ node: NODE, type_url: CDS });
    await waitFor(() => old.responses.length === 1, "the clusters");
    relay.update(await agentMaterial(ca, "renewed"));
    renewed.send({ node: NODE, type_url: CDS });
    // From the cache first, then from the server on the new upstream stream.
    await waitFor(() => renewed.responses.length === 2, "the clusters on a new stream");
    await waitFor(() => server.streams.length === 2, "the second upstream stream");
    assert.deepEqual(server.streams.map((s) => s.san), [
      "URI:spiffe://ironmesh.test/ns/default/sa/web",
      "URI:spiffe://ironmesh.test/ns/default/sa/renewed",
    ]);
    server.set(CDS, "b", {});
    await waitFor(() => old.responses.length === 2, "a push on the old stream");
    assert.equal(server.streams.length, 2, "no stream was replaced");
    old.end();
    renewed.end();
  } finally {
    old.close();
    renewed.close();
    await finish();
  }
});

Deno.test("xDS relay: close() ends clients' streams and cancels upstream", async () => {
  const { server, relay, finish } = await setUp();
  server.set(CDS, "a", {});
  const app = AdsClient.sotw(codec, relayAddress(relay));
  try {
    app.send({ node: NODE, type_url: CDS });
    await waitFor(() => app.responses.length === 1, "the clusters");
    await relay.close();
    // After a response no status can follow (no trailers, see xds_relay.ts): the connection closes.
    assert.equal((await app.status).code, grpc.status.UNAVAILABLE);
    await waitFor(() => server.streams[0]?.cancelled === true, "the server sees the cancel");
  } finally {
    app.close();
    await finish();
  }
});

Deno.test("xDS relay ends a stream that sends something that is not xDS, with INVALID_ARGUMENT", async () => {
  const { relay, finish } = await setUp();
  const app = AdsClient.sotw(codec, relayAddress(relay));
  try {
    app.sendRaw(new Uint8Array([0x0a, 0xff, 0xff, 0xff]));
    const status = await app.status;
    assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
    assert.match(status.details, /^Invalid xDS request: /);
    await waitFor(() => relay.stats().streams === 0, "the session gone");
  } finally {
    app.close();
    await finish();
  }
});

Deno.test("parseLocalXdsAddr() accepts loopback only; defaultXdsServer() uses port 15012", () => {
  assert.deepEqual(parseLocalXdsAddr("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
  assert.deepEqual(parseLocalXdsAddr("[::1]:15010"), { host: "::1", port: 15010 });
  assert.deepEqual(parseLocalXdsAddr("localhost:15010"), { host: "localhost", port: 15010 });
  for (const bad of ["0.0.0.0:15010", "10.0.0.1:15010", "[::]:15010", "example.com:1"]) {
    assert.throws(() => parseLocalXdsAddr(bad), /must be a loopback address/);
  }
  assert.throws(() => parseLocalXdsAddr("127.0.0.1"), /expected HOST:PORT/);
  assert.throws(() => parseLocalXdsAddr("127.0.0.1:70000"), /expected HOST:PORT/);
  assert.equal(defaultXdsServer("https://10.0.0.1:8443"), "10.0.0.1:15012");
  assert.equal(defaultXdsServer("https://mesh.example:8443/"), "mesh.example:15012");
  assert.equal(defaultXdsServer("https://[::1]:8443"), "[::1]:15012");
});

const BUNDLE = "-----BEGIN CERTIFICATE-----\nTHEBUNDLE\n-----END CERTIFICATE-----\n";
const ROOTCA = { validation_context: { trusted_ca: { inline_string: BUNDLE } } };

/**
 * Issue 17, item 13. Every SDS response to Envoy carries every secret it
 * subscribed to that the relay knows: `default` (the agent's) and `ROOTCA`
 * (the server's) together. Envoy's unified xDS mux delivers a
 * state-of-the-world response to each watch, and a watch that had a
 * resource and finds none in the response is told it was removed
 * (envoy `source/common/config/watch_map.cc`, `WatchMap::onConfigUpdate`: "If
 * this watch previously had some resources, it means this update is
 * removing all of this watch's resources, so the watch must be informed with
 * an onConfigUpdate"). A response with `default` alone would remove `ROOTCA`.
 */
Deno.test("xDS relay serves `default` itself and every SDS response carries `default` and ROOTCA together", async () => {
  const { ca, server, relay, finish } = await setUp();
  server.set(SDS, "ROOTCA", ROOTCA);
  const envoy = AdsClient.sotw(codec, relayAddress(relay));
  const node = { id: "vm-1", cluster: "vm-1", metadata: { IRONMESH_PROXY: "sidecar" } };
  const names = (r: (typeof envoy.responses)[number]) => (r.resources ?? []).map((x) => x.name);
  try {
    envoy.send({ node, resource_names: ["ROOTCA", "default"], type_url: SDS });
    await waitFor(() => envoy.responses.some((r) => names(r).length === 2), "both secrets");
    // Before the server answers, the agent may send `default` alone (ROOTCA was never seen, so
    // nothing is removed); from the server's answer on, both come in each response.
    const both = envoy.responses.find((r) => names(r).length === 2)!;
    assert.deepEqual(names(both), ["ROOTCA", "default"]);
    const [rootca, mine] = both.resources!;
    assert.deepEqual(rootca, { "@type": SDS, name: "ROOTCA", ...ROOTCA });
    assert.equal(mine!.name, "default");
    const tls = mine!.tls_certificate as { certificate_chain: { inline_string: string } };
    assert.match(tls.certificate_chain.inline_string, /BEGIN CERTIFICATE/);
    assert.match(
      both.version_info!,
      /^\d+\+[0-9a-f]{16}$/,
      "the server's version and the certificate's",
    );
    const upstream = server.streams[0]!;
    assert.deepEqual(upstream.requests[0], { node, resource_names: ["ROOTCA"], type_url: SDS });

    // Envoy ACKs: the server gets the ACK of its own response, with its version and nonce.
    envoy.send({
      version_info: both.version_info!,
      resource_names: ["ROOTCA", "default"],
      type_url: SDS,
      response_nonce: both.nonce!,
    });
    await waitFor(() => upstream.requests.length === 2, "the ACK upstream");
    assert.deepEqual(upstream.requests[1], {
      version_info: server.version,
      resource_names: ["ROOTCA"],
      type_url: SDS,
      response_nonce: "1",
    });

    // A renewal: the new `default`, with ROOTCA, on the running stream.
    const count = envoy.responses.length;
    const renewed = await agentMaterial(ca, "web");
    relay.update(renewed);
    await waitFor(() => envoy.responses.length === count + 1, "the renewed certificate");
    const next = envoy.responses.at(-1)!;
    assert.deepEqual(names(next), ["ROOTCA", "default"]);
    assert.deepEqual(next.resources![1]!.tls_certificate, {
      certificate_chain: { inline_string: renewed.certPem },
      private_key: { inline_string: renewed.keyPem },
    });
    // A new bundle from the server: ROOTCA, with `default`.
    server.set(SDS, "ROOTCA", { validation_context: { trusted_ca: { inline_string: "NEW" } } });
    await waitFor(() => envoy.responses.length === count + 2, "the new bundle");
    assert.deepEqual(names(envoy.responses.at(-1)!), ["ROOTCA", "default"]);

    // Neither the secret's name nor a key ever went to the server.
    for (const request of upstream.requests as { resource_names?: string[] }[]) {
      assert.ok(!request.resource_names?.includes("default"), JSON.stringify(request));
    }
    for (const bytes of upstream.raws) {
      assert.ok(!bytes.toString("latin1").includes("PRIVATE KEY"));
    }
    envoy.end();
  } finally {
    envoy.close();
    await finish();
  }
});

Deno.test("xDS relay serves `default` on delta streams too, without asking the server", async () => {
  const { server, relay, finish } = await setUp();
  server.set(SDS, "ROOTCA", ROOTCA);
  const envoy = AdsClient.delta(codec, relayAddress(relay));
  try {
    envoy.send({ node: NODE, type_url: SDS, resource_names_subscribe: ["default"] });
    await waitFor(() => envoy.responses.length === 1, "the certificate");
    assert.deepEqual(envoy.responses[0]!.resources!.map((r) => r.name), ["default"]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(server.streams.length, 0, "nothing to ask the server");
    envoy.send({ type_url: SDS, resource_names_subscribe: ["ROOTCA"] });
    await waitFor(() => envoy.responses.length === 2, "the bundle from the server");
    assert.deepEqual(envoy.responses[1]!.resources!.map((r) => r.name), ["ROOTCA"]);
    assert.deepEqual(server.streams[0]!.requests[0], {
      node: NODE,
      type_url: SDS,
      resource_names_subscribe: ["ROOTCA"],
    });
    envoy.end();
  } finally {
    envoy.close();
    await finish();
  }
});

const AGENT_YAML = `
node: {name: vm-1, address: 127.0.0.1, labels: {region: r1, zone: z1}}
heartbeat: {interval: 100ms}
`;

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch {
    return undefined;
  }
}

Deno.test("runAgent() serves the local xDS endpoint: agent.json, bootstrap, cache file, renewed certificate", async () => {
  await withRealServer(async (control) => {
    // The server asks for the renewal when it signs with a new root: the
    // rotation starts before the agent enrols, so the xDS port below trusts
    // both roots and takes the renewed certificate too.
    await control.identity.startRotation();
    await control.tlsReloaded();
    const server = await XdsServerDouble.start(codec, control.authority);
    server.set(CDS, "a", {});
    const dataDir = `${await Deno.makeTempDir()}/data`;
    const log: string[] = [];
    const controller = new AbortController();
    const done = runAgent({
      joinToken: await control.joinToken({ node: "vm-1" }),
      config: parseAgentConfig(AGENT_YAML, "agent.yaml"),
      dataDir,
      host: HOST,
      random: () => 0.5,
      logger: jsonLogger((l) => log.push(l)),
      localXds: { listen: { host: "127.0.0.1", port: 0 }, upstream: server.address },
    }, controller.signal);
    done.catch(() => {});
    const apps: ReturnType<typeof AdsClient.sotw>[] = [];
    try {
      let state: Record<string, unknown> | undefined;
      await waitFor(async () => {
        state = await readJson(`${dataDir}/agent.json`);
        return typeof state?.xds === "string";
      }, "agent.json with xds");
      const xds = state!.xds as string;
      assert.match(xds, /^127\.0\.0\.1:[1-9]\d*$/);
      assert.equal(state!.node, "vm-1");
      assert.equal(typeof state!.certificate, "object", "the other keys stay");
      // deno-lint-ignore no-explicit-any -- a JSON document
      let bootstrap: any;
      await waitFor(async () => {
        bootstrap = await readJson(`${dataDir}/envoy/bootstrap.json`);
        return bootstrap !== undefined;
      }, "the Envoy bootstrap");
      assert.deepEqual(bootstrap.node.locality, { region: "r1", zone: "z1" });
      assert.equal(
        bootstrap.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0]
          .endpoint.address.socket_address.port_value,
        Number(xds.split(":")[1]),
      );

      const first = AdsClient.sotw(codec, xds);
      apps.push(first);
      first.send({ node: NODE, type_url: CDS });
      await waitFor(() => first.responses.length === 1, "clusters through the agent");
      assert.equal(server.streams[0]!.san, "URI:spiffe://ironmesh.test/ns/default/sa/web");
      await waitFor(
        async () => (await readJson(`${dataDir}/xds/cache.json`)) !== undefined,
        "the cache file",
      );

      assert.equal(await control.identity.advanceRotation(), "switched");
      await waitFor(async () => {
        const s = await readJson(`${dataDir}/agent.json`);
        const cert = s?.certificate as { serial?: string } | undefined;
        return control.issued.length >= 2 && s?.xds === xds &&
          cert?.serial !== undefined && normalizeSerial(cert.serial) === control.issued[1];
      }, "renewal recorded in agent.json");
      const second = AdsClient.sotw(codec, xds);
      apps.push(second);
      second.send({ node: NODE, type_url: CDS });
      await waitFor(() => server.streams.length === 2, "a second upstream stream");
      assert.equal(server.streams[1]!.san, "URI:spiffe://ironmesh.test/ns/default/sa/web");
      server.set(CDS, "b", {});
      await waitFor(() => first.responses.length === 2, "the old stream still served");

      controller.abort();
      await done;
      assert.equal((await first.status).code, grpc.status.UNAVAILABLE);
      assert.ok(log.some((l) => l.includes("Local xDS endpoint listening")));
    } finally {
      controller.abort();
      await done.catch(() => {});
      for (const app of apps) app.close();
      server.stop();
      await Deno.remove(dataDir.replace(/\/data$/, ""), { recursive: true });
    }
  });
});

Deno.test("runAgent() keeps serving its node while the local xDS address is taken", async () => {
  await withRealServer(async (server) => {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (taken.addr as Deno.NetAddr).port;
    let released = false;
    const dataDir = `${await Deno.makeTempDir()}/data`;
    const log: string[] = [];
    const controller = new AbortController();
    const done = runAgent({
      joinToken: await server.joinToken({ node: "vm-1" }),
      config: parseAgentConfig(AGENT_YAML, "agent.yaml"),
      dataDir,
      host: HOST,
      random: () => 0.5,
      logger: jsonLogger((l) => log.push(l)),
      localXds: { listen: { host: "127.0.0.1", port }, upstream: "127.0.0.1:1" },
    }, controller.signal);
    done.catch(() => {});
    try {
      await waitFor(
        () => log.some((l) => l.includes("Cannot start the local xDS endpoint")),
        "the bind failure",
      );
      await waitFor(() => nodeCalls(server).length >= 3, "registration and heartbeats");
      taken.close();
      released = true;
      await waitFor(
        async () => {
          const state = await readJson(`${dataDir}/agent.json`);
          return state?.xds === `127.0.0.1:${port}`;
        },
        "the endpoint bound once the port is free",
        5_000,
      );
    } finally {
      if (!released) taken.close();
      controller.abort();
      await done.catch(() => {});
      await Deno.remove(dataDir.replace(/\/data$/, ""), { recursive: true });
    }
  });
});
