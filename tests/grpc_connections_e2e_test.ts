/**
 * The server's gRPC ports bound what a connection may hold without using it
 * (issue 14 item 9), as the HTTP ports do (`connections_e2e_test.ts`): one
 * that sends nothing, or only half the HTTP/2 preface, is closed after
 * `--header-timeout`; one with no call open after `--idle-timeout`; more than
 * `--max-connections` are closed as they arrive. An ADS stream is a call, so
 * it outlives the idle timeout and keeps getting pushes. Run against the real
 * program on the mTLS gRPC port (with a mesh certificate from enrolment) and
 * the plaintext xDS port.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { makeCsr, testKeys } from "../ca/_testing.ts";
import { LDS, type SotwResponse, TestSotwClient } from "../xds/_ads_testing.ts";
import { ServerProc, tempDir, waitFor } from "./harness.ts";

/** The HTTP/2 client preface and an empty SETTINGS frame: what every gRPC client sends first. */
const PREFACE = Buffer.concat([
  Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
  Buffer.from([0, 0, 0, 0x04, 0, 0, 0, 0, 0]),
]);

/** A mesh certificate for node `vm-conn`, from the server's own enrolment. */
interface Mesh {
  key: string;
  cert: string;
  ca: string;
}

async function enrol(server: ServerProc): Promise<Mesh> {
  const keys = await testKeys();
  const res = await server.api("POST", "/v1/ca/enrol", {
    token: null,
    body: { token: await server.joinToken(), csr: await makeCsr({ keys }), node: "vm-conn" },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const b64 = Buffer.from(pkcs8).toString("base64").replace(/.{64}/g, "$&\n");
  return {
    key: `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`,
    cert: res.body.certificate,
    ca: res.body.bundle,
  };
}

type Port = {
  name: string;
  port: number;
  /** A TCP connection (with a finished mTLS handshake on the mTLS port). */
  open: () => Promise<Socket>;
  credentials: () => grpc.ChannelCredentials;
  /** The name to dial: the grpc-js client under Deno refuses an IP address as TLS server name. */
  host: string;
};

function ports(info: { grpc: string; xdsPlaintext: string }, mesh: Mesh): Port[] {
  const mtls = Number(info.grpc.split(":").pop());
  const plain = Number(info.xdsPlaintext.split(":").pop());
  return [
    {
      name: "grpc (mTLS)",
      port: mtls,
      open: () =>
        new Promise((resolve, reject) => {
          const s = tlsConnect(
            { port: mtls, host: "127.0.0.1", ...mesh, ALPNProtocols: ["h2"] },
            () => resolve(s),
          );
          s.once("error", reject);
        }),
      credentials: () =>
        grpc.credentials.createSsl(
          Buffer.from(mesh.ca),
          Buffer.from(mesh.key),
          Buffer.from(mesh.cert),
        ),
      host: "localhost",
    },
    {
      name: "xds plaintext",
      port: plain,
      open: () =>
        new Promise((resolve, reject) => {
          const s = connect(plain, "127.0.0.1", () => resolve(s));
          s.once("error", reject);
        }),
      credentials: () => grpc.credentials.createInsecure(),
      host: "127.0.0.1",
    },
  ];
}

/** A bare TCP connection (no TLS handshake, not a byte sent). */
function openTcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
}

/** Tracks whether `socket` was closed by the other end, and how many bytes it received. */
function watch(socket: Socket) {
  const state = { closed: false, received: 0, closedAt: 0 };
  socket.on("data", (d: Buffer) => state.received += d.length);
  socket.on("close", () => {
    state.closed = true;
    state.closedAt = Date.now();
  });
  socket.on("error", () => {});
  return state;
}

/** One health check through a fresh channel; resolves with the serving status or the error. */
function healthCheck(port: Port): Promise<string> {
  const client = new grpc.Client(`${port.host}:${port.port}`, port.credentials());
  return new Promise<string>((resolve) => {
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (error: grpc.ServiceError | null, reply?: Buffer) =>
        resolve(error ? `error ${error.code}` : `status ${reply![1]}`),
    );
  }).finally(() => client.close());
}

async function putService(server: ServerProc, name: string): Promise<void> {
  const put = await server.api("PUT", `/v1/services/default/${name}`, {
    body: { ports: [{ port: 8080, protocol: "grpc" }] },
  });
  assert.equal(put.status, 201, JSON.stringify(put.body));
}

/** Acknowledges LDS responses on `ads` until one whose listener names satisfy `want`. */
async function nextListeners(
  ads: TestSotwClient,
  want: (names: string[]) => boolean,
): Promise<SotwResponse> {
  const until = Date.now() + 10_000;
  while (true) {
    const response = await ads.next(Math.max(1, until - Date.now()));
    ads.ack(response);
    const names = (response.resources ?? []).map((r) => String(r.name ?? ""));
    if (response.type_url === LDS && want(names)) return response;
  }
}

async function startServer(prefix: string, args: string[]) {
  const dir = await tempDir(prefix);
  const server = await ServerProc.start(dir, ["--xds-plaintext-addr", "127.0.0.1:0", ...args]);
  const info = JSON.parse(await Deno.readTextFile(`${dir}/server.json`));
  return { dir, server, list: ports(info, await enrol(server)) };
}

Deno.test("gRPC ports close silent, half-preface and idle connections; an open ADS stream stays", async () => {
  const { dir, server, list } = await startServer("grpc-connections", [
    "--header-timeout",
    "1s",
    "--idle-timeout",
    "3s",
  ]);
  const sockets: Socket[] = [];
  const streams: TestSotwClient[] = [];
  try {
    for (const port of list) {
      const opened = Date.now();
      const tcp = await openTcp(port.port);
      const silent = await port.open();
      const half = await port.open();
      const idle = await port.open();
      sockets.push(tcp, silent, half, idle);
      const states = {
        tcp: watch(tcp),
        silent: watch(silent),
        half: watch(half),
        idle: watch(idle),
      };
      half.write(PREFACE.subarray(0, 16));
      idle.write(PREFACE);
      // A proxyless client's stream, answered at once for a service that exists.
      const [before, after] = [`early-${list.indexOf(port)}`, `late-${list.indexOf(port)}`];
      await putService(server, before);
      const ads = new TestSotwClient(port.port, "vm-conn", {
        credentials: port.credentials(),
        host: port.host,
      });
      streams.push(ads);
      ads.subscribe(LDS, [`${before}.default`, `${after}.default`]);
      const first = await nextListeners(ads, (names) => names.includes(`${before}.default`));

      await waitFor(
        `${port.name}: the silent and half-preface connections closed`,
        () => states.tcp.closed && states.silent.closed && states.half.closed,
        10_000,
      );
      for (const [name, state] of Object.entries(states).filter(([n]) => n !== "idle")) {
        assert.ok(
          state.closedAt - opened >= 900,
          `${port.name}: ${name} closed before the header timeout (${state.closedAt - opened} ms)`,
        );
      }
      // The header deadline is over, the idle one not yet: a connection that spoke HTTP/2 stays.
      assert.equal(states.idle.closed, false, `${port.name}: idle closed too early`);
      assert.ok(states.idle.received > 0, `${port.name}: the server's SETTINGS on the idle one`);
      await waitFor(`${port.name}: the idle connection closed`, () => states.idle.closed, 10_000);
      assert.ok(
        states.idle.closedAt - opened >= 2_900,
        `${port.name}: idle closed before the idle timeout (${states.idle.closedAt - opened} ms)`,
      );

      // Past the idle timeout the ADS stream is still open and still gets pushes.
      await putService(server, after);
      const pushed = await nextListeners(ads, (names) => names.includes(`${after}.default`));
      assert.notEqual(pushed.version_info, first.version_info, `${port.name}: a new version`);
      const ended = await Promise.race([
        ads.ended.then((s) => `ended: ${s.code} ${s.details}`),
        new Promise((r) => setTimeout(() => r("open"), 100)),
      ]);
      assert.equal(ended, "open", `${port.name}: the ADS stream`);
      assert.equal(await healthCheck(port), "status 1", `${port.name}: a new call is served`);
    }
    assert.doesNotMatch(server.proc.output, /"level":"error"/);
  } finally {
    for (const s of sockets) s.destroy();
    await Promise.all(streams.map((s) => s.close().catch(() => {})));
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gRPC ports close connections over --max-connections as they arrive", async () => {
  const { dir, server, list } = await startServer("grpc-connections-cap", [
    "--max-connections",
    "3",
  ]);
  const sockets: Socket[] = [];
  try {
    for (const port of list) {
      const held = [await port.open(), await port.open(), await port.open()];
      sockets.push(...held);
      for (const s of held) s.write(PREFACE);
      const heldStates = held.map(watch);
      await waitFor(
        `${port.name}: SETTINGS on every held connection`,
        () => heldStates.every((s) => s.received > 0),
      );
      const extra = await openTcp(port.port);
      sockets.push(extra);
      const state = watch(extra);
      extra.write(PREFACE);
      await waitFor(`${port.name}: the fourth connection closed`, () => state.closed, 5_000);
      assert.equal(state.received, 0, `${port.name}: the fourth was answered`);
      assert.ok(heldStates.every((s) => !s.closed), `${port.name}: a held connection was closed`);
      for (const s of held) s.destroy();
      // Below the cap again: served.
      await waitFor(
        `${port.name}: a new call served`,
        async () => await healthCheck(port) === "status 1",
      );
    }
  } finally {
    for (const s of sockets) s.destroy();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
