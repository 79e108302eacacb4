import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { parseAgentConfig } from "../core/agent_config.ts";
import { jsonLogger, silentLogger } from "../core/log.ts";
import { runAgent } from "./agent.ts";
import { createTestCa, startTlsServerDouble, type TestCa } from "./_tls_server_double.ts";
import type { TlsMaterial } from "./tls_clients.ts";
import { HOST, nodeRequests, waitFor } from "./_test_agent.ts";
// Tests may reach sideways: the Envoy-like client and the server double speak real protobuf.
import { decodeStrict, encodeStrict } from "../xds/proto/codec.ts";
import {
  ADS_METHOD,
  defaultXdsServer,
  parseLocalXdsAddr,
  startXdsRelay,
  type XdsRelay,
} from "./xds_relay.ts";

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const raw = (b: Buffer) => b;

async function leaf(
  ca: TestCa,
  usage: "server" | "client",
  names: { cn: string; uris?: string[]; ips?: string[] },
): Promise<{ key: string; cert: string }> {
  const keys = await crypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"]);
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const b64 = btoa(String.fromCharCode(...der)).replace(/(.{64})/g, "$1\n");
  const key = `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
  const cert = await ca.issue({
    publicKey: keys.publicKey,
    commonName: names.cn,
    uris: names.uris ?? [],
    ips: names.ips ?? [],
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    usage,
  });
  return { key, cert };
}

/** One stream the upstream double received. */
interface UpstreamStream {
  san: string | undefined;
  serial: string | undefined;
  received: string[];
  ended: boolean;
  cancelled: boolean;
  call: grpc.ServerDuplexStream<Buffer, Buffer>;
}

/**
 * A test double of the server's ADS port: mTLS with client certificates
 * required, answering every message with `echo:<message>`, recording what
 * each stream saw, and ending a stream with OK when the client half-closes.
 */
async function startUpstreamDouble(
  ca: TestCa,
  serving?: { key: string; cert: string },
) {
  serving ??= await leaf(ca, "server", { cn: "server", ips: ["127.0.0.1"] });
  const streams: UpstreamStream[] = [];
  const server = new grpc.Server();
  server.addService({
    ads: {
      path: ADS_METHOD,
      requestStream: true,
      responseStream: true,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    },
  }, {
    ads: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const seen: UpstreamStream = {
        san: call.getAuthContext().sslPeerCertificate?.subjectaltname,
        serial: call.getAuthContext().sslPeerCertificate?.serialNumber?.toLowerCase(),
        received: [],
        ended: false,
        cancelled: false,
        call,
      };
      streams.push(seen);
      call.on("data", (b: Buffer) => {
        const text = b.toString();
        seen.received.push(text);
        if (text === "fail") {
          call.emit("error", { code: grpc.status.PERMISSION_DENIED, details: "not you" });
        } else {
          call.write(Buffer.concat([Buffer.from("echo:"), b]));
        }
      });
      call.on("end", () => {
        seen.ended = true;
        call.end();
      });
      call.on("cancelled", () => seen.cancelled = true);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createSsl(
        Buffer.from(ca.rootPem),
        [{ private_key: Buffer.from(serving.key), cert_chain: Buffer.from(serving.cert) }],
        true,
      ),
      (e, p) => e ? reject(e) : resolve(p),
    )
  );
  return { address: `127.0.0.1:${port}`, streams, stop: () => server.forceShutdown() };
}

/** An application's ADS stream through the relay, as grpc-js-xds opens it (plaintext). */
function openApp(relay: XdsRelay | string) {
  const client = new grpc.Client(
    typeof relay === "string" ? relay : `127.0.0.1:${relay.address.port}`,
    grpc.credentials.createInsecure(),
  );
  const call = client.makeBidiStreamRequest(ADS_METHOD, raw, raw, new grpc.Metadata(), {});
  const received: string[] = [];
  call.on("data", (b: Buffer) => received.push(b.toString()));
  call.on("error", () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  return { client, call, received, status };
}

async function agentMaterial(ca: TestCa, sa: string): Promise<TlsMaterial> {
  const { key, cert } = await leaf(ca, "client", {
    cn: "vm-1",
    uris: [`spiffe://ironmesh.test/ns/default/sa/${sa}`],
  });
  return { caPem: ca.rootPem, certPem: cert, keyPem: key };
}

async function setUp() {
  const ca = await createTestCa("Relay Test");
  const upstream = await startUpstreamDouble(ca);
  const relay = await startXdsRelay({
    listen: { host: "127.0.0.1", port: 0 },
    upstream: upstream.address,
    material: await agentMaterial(ca, "web"),
    log: silentLogger,
  });
  return {
    ca,
    upstream,
    relay,
    async finish() {
      await relay.close();
      upstream.stop();
    },
  };
}

Deno.test("xDS relay passes bytes both ways over mTLS with the agent's certificate", async () => {
  const { upstream, relay, finish } = await setUp();
  const app = openApp(relay);
  try {
    assert.notEqual(relay.address.port, 0);
    app.call.write(Buffer.from("one"));
    app.call.write(Buffer.from("two"));
    await waitFor(() => app.received.length === 2, "two echoes");
    assert.deepEqual(app.received, ["echo:one", "echo:two"]);
    assert.equal(upstream.streams.length, 1);
    assert.equal(upstream.streams[0]!.san, "URI:spiffe://ironmesh.test/ns/default/sa/web");
    assert.deepEqual(upstream.streams[0]!.received, ["one", "two"]);

    // Binary payloads arrive byte for byte.
    const bytes = Buffer.from([0, 1, 2, 0x80, 0xff, 0x0a]);
    const echoed = new Promise<Buffer>((resolve) => app.call.once("data", resolve));
    app.call.write(bytes);
    const back = await echoed;
    assert.deepEqual([...back.subarray(5)], [...bytes]);

    // The application half-closes: the server sees the end and its OK reaches the application.
    app.call.end();
    const status = await app.status;
    assert.equal(status.code, grpc.status.OK);
    assert.equal(upstream.streams[0]!.ended, true);
    await waitFor(() => relay.stats().streams === 0, "relay stream closed");
  } finally {
    app.client.close();
    await finish();
  }
});

Deno.test("xDS relay propagates a cancel to the server and the server's error to the app", async () => {
  const { upstream, relay, finish } = await setUp();
  const cancelled = openApp(relay);
  const refused = openApp(relay);
  try {
    cancelled.call.write(Buffer.from("hello"));
    await waitFor(() => cancelled.received.length === 1, "an echo");
    cancelled.call.cancel();
    await waitFor(() => upstream.streams[0]?.cancelled === true, "server sees the cancel");

    refused.call.write(Buffer.from("fail"));
    const status = await refused.status;
    assert.equal(status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(status.details, "not you");
    await waitFor(() => relay.stats().streams === 0, "both relay streams closed");
  } finally {
    cancelled.client.close();
    refused.client.close();
    await finish();
  }
});

Deno.test("xDS relay: an unreachable server gives the app UNAVAILABLE", async () => {
  const ca = await createTestCa("Relay Test");
  // A port that was free a moment ago: nothing listens there.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const relay = await startXdsRelay({
    listen: { host: "127.0.0.1", port: 0 },
    upstream: `127.0.0.1:${port}`,
    material: await agentMaterial(ca, "web"),
    log: silentLogger,
  });
  const app = openApp(relay);
  try {
    app.call.write(Buffer.from("anyone?"));
    const status = await app.status;
    assert.equal(status.code, grpc.status.UNAVAILABLE);
    await waitFor(() => relay.stats().streams === 0, "relay stream closed");
  } finally {
    app.client.close();
    await relay.close();
  }
});

Deno.test("xDS relay refuses a server outside the mesh roots or without the dialled IP", async () => {
  const ca = await createTestCa("Relay Test");
  const stranger = await createTestCa("Stranger");
  const cases = [
    await leaf(stranger, "server", { cn: "server", ips: ["127.0.0.1"] }),
    await leaf(ca, "server", { cn: "server", ips: ["10.1.2.3"] }),
  ];
  for (const serving of cases) {
    const upstream = await startUpstreamDouble(ca, serving);
    const relay = await startXdsRelay({
      listen: { host: "127.0.0.1", port: 0 },
      upstream: upstream.address,
      material: await agentMaterial(ca, "web"),
      log: silentLogger,
    });
    const app = openApp(relay);
    try {
      app.call.write(Buffer.from("secret"));
      const status = await app.status;
      assert.equal(status.code, grpc.status.UNAVAILABLE);
      assert.equal(upstream.streams.length, 0, "no stream reached the wrong server");
    } finally {
      app.client.close();
      await relay.close();
      upstream.stop();
    }
  }
});

Deno.test("xDS relay: new streams use renewed material, running ones keep theirs", async () => {
  const { ca, upstream, relay, finish } = await setUp();
  const old = openApp(relay);
  let renewed: ReturnType<typeof openApp> | undefined;
  try {
    old.call.write(Buffer.from("a"));
    await waitFor(() => old.received.length === 1, "first echo");
    const material = await agentMaterial(ca, "renewed");
    relay.update(material);
    assert.equal(relay.stats().channels, 2);
    // The same material again changes nothing.
    relay.update({ ...material });
    assert.equal(relay.stats().channels, 2);
    renewed = openApp(relay);
    renewed.call.write(Buffer.from("b"));
    await waitFor(() => renewed!.received.length === 1, "echo on the new stream");
    assert.equal(upstream.streams[1]!.san, "URI:spiffe://ironmesh.test/ns/default/sa/renewed");

    // The old stream still works on the old channel.
    old.call.write(Buffer.from("c"));
    await waitFor(() => old.received.length === 2, "second echo on the old stream");
    assert.deepEqual(upstream.streams[0]!.received, ["a", "c"]);
    assert.equal(upstream.streams[0]!.san, "URI:spiffe://ironmesh.test/ns/default/sa/web");

    // Once its last stream ends, the retired channel closes.
    old.call.end();
    assert.equal((await old.status).code, grpc.status.OK);
    await waitFor(() => relay.stats().channels === 1, "retired channel closed");
  } finally {
    old.client.close();
    renewed?.client.close();
    await finish();
  }
});

Deno.test("xDS relay: close() ends app streams with UNAVAILABLE and cancels upstream", async () => {
  const { upstream, relay, finish } = await setUp();
  const app = openApp(relay);
  try {
    app.call.write(Buffer.from("x"));
    await waitFor(() => app.received.length === 1, "an echo");
    await relay.close();
    const status = await app.status;
    assert.equal(status.code, grpc.status.UNAVAILABLE);
    await waitFor(() => upstream.streams[0]?.cancelled === true, "server sees the cancel");
  } finally {
    app.client.close();
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

const DISCOVERY_REQUEST = "envoy.service.discovery.v3.DiscoveryRequest";
const DISCOVERY_RESPONSE = "envoy.service.discovery.v3.DiscoveryResponse";
const SDS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
const CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const BUNDLE = "-----BEGIN CERTIFICATE-----\nTHEBUNDLE\n-----END CERTIFICATE-----\n";

interface Discovery {
  version_info?: string;
  node?: Record<string, unknown>;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  nonce?: string;
  resources?: { "@type": string; name: string; [key: string]: unknown }[];
}

/**
 * A test double of the server's ADS port that speaks xDS: it records every
 * request (raw and decoded) and answers a fresh SDS request with the trust
 * bundle `ROOTCA` when it is named, with its own nonces, as the server does.
 */
async function startSdsUpstreamDouble(ca: TestCa) {
  const serving = await leaf(ca, "server", { cn: "server", ips: ["127.0.0.1"] });
  const raws: Buffer[] = [];
  const requests: Discovery[] = [];
  let nonce = 0;
  const server = new grpc.Server();
  server.addService({
    ads: {
      path: ADS_METHOD,
      requestStream: true,
      responseStream: true,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    },
  }, {
    ads: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on("data", (b: Buffer) => {
        raws.push(b);
        const request = decodeStrict(DISCOVERY_REQUEST, b) as Discovery;
        requests.push(request);
        const fresh = (request.response_nonce ?? "") === "";
        if (request.type_url === SDS && fresh && request.resource_names?.includes("ROOTCA")) {
          call.write(Buffer.from(encodeStrict(DISCOVERY_RESPONSE, {
            version_info: "bundle-1",
            type_url: SDS,
            nonce: String(++nonce),
            resources: [{
              "@type": SDS,
              name: "ROOTCA",
              validation_context: { trusted_ca: { inline_string: BUNDLE } },
            }],
          })));
        }
      });
      call.on("end", () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createSsl(
        Buffer.from(ca.rootPem),
        [{ private_key: Buffer.from(serving.key), cert_chain: Buffer.from(serving.cert) }],
        true,
      ),
      (e, p) => e ? reject(e) : resolve(p),
    )
  );
  return { address: `127.0.0.1:${port}`, raws, requests, stop: () => server.forceShutdown() };
}

/** An Envoy sidecar's ADS stream through the relay: protobuf requests out, decoded responses in. */
function openEnvoy(relay: XdsRelay) {
  const app = openApp(relay);
  const responses: Discovery[] = [];
  app.call.removeAllListeners("data");
  app.call.on("data", (b: Buffer) => {
    responses.push(decodeStrict(DISCOVERY_RESPONSE, b) as Discovery);
  });
  return {
    ...app,
    responses,
    send(request: Discovery) {
      app.call.write(Buffer.from(encodeStrict(DISCOVERY_REQUEST, request)));
    },
  };
}

Deno.test("xDS relay serves Envoy's `default` secret itself; ROOTCA and the rest come from the server", async () => {
  const ca = await createTestCa("Relay Test");
  const upstream = await startSdsUpstreamDouble(ca);
  const material = await agentMaterial(ca, "web");
  const relay = await startXdsRelay({
    listen: { host: "127.0.0.1", port: 0 },
    upstream: upstream.address,
    material,
    log: silentLogger,
  });
  const envoy = openEnvoy(relay);
  const node = { id: "vm-1", cluster: "vm-1", metadata: { IRONMESH_PROXY: "sidecar" } };
  const secret = (r: Discovery) => r.resources?.[0];
  try {
    envoy.send({ node, resource_names: ["ROOTCA", "default"], type_url: SDS });
    await waitFor(() => envoy.responses.length === 2, "default from the agent and ROOTCA");
    const mine = envoy.responses.find((r) => secret(r)?.name === "default")!;
    const theirs = envoy.responses.find((r) => secret(r)?.name === "ROOTCA")!;
    assert.equal(mine.type_url, SDS);
    assert.match(mine.version_info!, /^[0-9a-f]{16}$/);
    assert.deepEqual(secret(mine)!.tls_certificate, {
      certificate_chain: { inline_string: material.certPem },
      private_key: { inline_string: material.keyPem },
    });
    assert.deepEqual(secret(theirs)!.validation_context, {
      trusted_ca: { inline_string: BUNDLE },
    });
    // The server got Envoy's node and ROOTCA alone.
    assert.deepEqual(upstream.requests, [{ node, resource_names: ["ROOTCA"], type_url: SDS }]);

    // Envoy ACKs both on its one SDS slot; only the ACK of the server's response goes up.
    envoy.send({
      version_info: mine.version_info!,
      resource_names: ["ROOTCA", "default"],
      type_url: SDS,
      response_nonce: mine.nonce!,
    });
    envoy.send({
      version_info: theirs.version_info!,
      resource_names: ["ROOTCA", "default"],
      type_url: SDS,
      response_nonce: theirs.nonce!,
    });
    await waitFor(() => upstream.requests.length === 2, "the ACK of ROOTCA");
    assert.deepEqual(upstream.requests[1], {
      version_info: "bundle-1",
      resource_names: ["ROOTCA"],
      type_url: SDS,
      response_nonce: theirs.nonce!,
    });

    // A renewal reaches Envoy on its running stream.
    const renewed = await agentMaterial(ca, "web");
    relay.update(renewed);
    await waitFor(() => envoy.responses.length === 3, "the renewed certificate");
    const next = envoy.responses[2]!;
    assert.equal(secret(next)!.name, "default");
    assert.notEqual(next.version_info, mine.version_info);
    assert.notEqual(next.nonce, mine.nonce);
    assert.deepEqual(secret(next)!.tls_certificate, {
      certificate_chain: { inline_string: renewed.certPem },
      private_key: { inline_string: renewed.keyPem },
    });
    envoy.send({
      version_info: next.version_info!,
      resource_names: ["ROOTCA", "default"],
      type_url: SDS,
      response_nonce: next.nonce!,
    });
    // Anything else still goes up, after the ACK above (one stream keeps the order).
    envoy.send({ type_url: CDS });
    await waitFor(() => upstream.requests.length === 3, "the CDS request");
    assert.deepEqual(upstream.requests[2], { type_url: CDS });

    // Neither the secret's name nor a key, nor the agent's nonces, ever went to the server.
    const seen: Discovery[] = upstream.requests;
    for (const request of seen) {
      assert.ok(!request.resource_names?.includes("default"), JSON.stringify(request));
      assert.ok(!request.response_nonce?.startsWith("agent-"), JSON.stringify(request));
      assert.ok(!request.version_info || request.version_info === "bundle-1");
    }
    const keyBody = (pem: string) => pem.split("\n")[1]!;
    for (const bytes of upstream.raws) {
      const text = bytes.toString("latin1");
      assert.ok(!text.includes("PRIVATE KEY"));
      assert.ok(!text.includes(keyBody(material.keyPem!)));
      assert.ok(!text.includes(keyBody(renewed.keyPem!)));
    }
  } finally {
    envoy.client.close();
    await relay.close();
    upstream.stop();
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

Deno.test("runAgent() serves the local xDS endpoint: agent.json, bootstrap, renewed certificate", async () => {
  const double = await startTlsServerDouble();
  const upstream = await startUpstreamDouble(double.ca);
  const dataDir = `${await Deno.makeTempDir()}/data`;
  const lines: string[] = [];
  const controller = new AbortController();
  const done = runAgent({
    joinToken: double.joinToken({ node: "vm-1" }),
    config: parseAgentConfig(AGENT_YAML, "agent.yaml"),
    dataDir,
    host: HOST,
    random: () => 0.5,
    logger: jsonLogger((l) => lines.push(l)),
    localXds: { listen: { host: "127.0.0.1", port: 0 }, upstream: upstream.address },
  }, controller.signal);
  done.catch(() => {});
  const apps: ReturnType<typeof openApp>[] = [];
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

    const first = openApp(xds);
    apps.push(first);
    first.call.write(Buffer.from("before"));
    await waitFor(() => first.received.length === 1, "echo through the agent");
    assert.equal(upstream.streams[0]!.serial, double.issued[0]!.toLowerCase());
    assert.equal(upstream.streams[0]!.san, "URI:spiffe://ironmesh.test/ns/default/sa/web");

    double.askRenewal();
    await waitFor(async () => {
      const s = await readJson(`${dataDir}/agent.json`);
      const cert = s?.certificate as { serial?: string } | undefined;
      return double.issued.length >= 2 && cert?.serial === double.issued[1] && s?.xds === xds;
    }, "renewal recorded in agent.json");
    const second = openApp(xds);
    apps.push(second);
    second.call.write(Buffer.from("after"));
    await waitFor(() => second.received.length === 1, "echo on a new stream");
    assert.equal(upstream.streams[1]!.serial, double.issued[1]!.toLowerCase());
    // The stream opened before the renewal still works.
    first.call.write(Buffer.from("still"));
    await waitFor(() => first.received.length === 2, "old stream still relays");
    assert.equal(upstream.streams.length, 2);

    controller.abort();
    await done;
    assert.equal((await first.status).code, grpc.status.UNAVAILABLE);
    assert.ok(lines.some((l) => l.includes("Local xDS endpoint listening")));
  } finally {
    controller.abort();
    await done.catch(() => {});
    for (const app of apps) app.client.close();
    upstream.stop();
    await double.close();
    await Deno.remove(dataDir.replace(/\/data$/, ""), { recursive: true });
  }
});

Deno.test("runAgent() keeps serving its node while the local xDS address is taken", async () => {
  const double = await startTlsServerDouble();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  let released = false;
  const dataDir = `${await Deno.makeTempDir()}/data`;
  const lines: string[] = [];
  const controller = new AbortController();
  const done = runAgent({
    joinToken: double.joinToken({ node: "vm-1" }),
    config: parseAgentConfig(AGENT_YAML, "agent.yaml"),
    dataDir,
    host: HOST,
    random: () => 0.5,
    logger: jsonLogger((l) => lines.push(l)),
    localXds: { listen: { host: "127.0.0.1", port }, upstream: "127.0.0.1:1" },
  }, controller.signal);
  done.catch(() => {});
  try {
    await waitFor(
      () => lines.some((l) => l.includes("Cannot start the local xDS endpoint")),
      "the bind failure",
    );
    await waitFor(() => nodeRequests(double).length >= 3, "registration and heartbeats");
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
    await double.close();
    await Deno.remove(dataDir.replace(/\/data$/, ""), { recursive: true });
  }
});
