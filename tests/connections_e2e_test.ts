/**
 * The server's HTTP ports close connections that hold them without using them
 * (issue 14 item 9): one that sends nothing, one that sends half a request
 * head (slow headers), one that sits idle after a response; and each port
 * refuses connections over its cap. Run against the real program, on the
 * plain-HTTP port and on the TLS port.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { ServerProc, tempDir, waitFor } from "./harness.ts";

type Port = { name: string; open: () => Promise<Socket> };

function ports(server: ServerProc): Port[] {
  const http = new URL(server.url);
  const https = new URL(server.tlsUrl);
  return [
    {
      name: "http",
      open: () =>
        new Promise((resolve, reject) => {
          const s = connect(Number(http.port), http.hostname, () => resolve(s));
          s.once("error", reject);
        }),
    },
    {
      name: "https",
      open: () =>
        new Promise((resolve, reject) => {
          const s = tlsConnect(
            { port: Number(https.port), host: https.hostname, rejectUnauthorized: false },
            () => resolve(s),
          );
          s.once("error", reject);
        }),
    },
  ];
}

/** Tracks whether `socket` was closed by the other end, and what it received. */
function watch(socket: Socket) {
  const state = { closed: false, received: "" };
  socket.on("data", (d) => state.received += String(d));
  socket.on("close", () => state.closed = true);
  socket.on("error", () => {});
  return state;
}

Deno.test("HTTP and TLS ports close silent, slow-header and idle connections", async () => {
  const dir = await tempDir("connections");
  const server = await ServerProc.start(dir, [
    "--header-timeout",
    "1s",
    "--idle-timeout",
    "2s",
  ]);
  const sockets: Socket[] = [];
  try {
    for (const port of ports(server)) {
      const silent = await port.open();
      const slow = await port.open();
      const idle = await port.open();
      sockets.push(silent, slow, idle);
      const states = { silent: watch(silent), slow: watch(slow), idle: watch(idle) };
      slow.write("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      idle.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      await waitFor(
        `${port.name}: a response on the idle connection`,
        () => states.idle.received.includes("200 OK"),
      );
      await waitFor(
        `${port.name}: the silent and slow-header connections closed`,
        () => states.silent.closed && states.slow.closed,
        10_000,
      );
      // The header deadline is over, the idle one not yet: a connection that had its answer stays.
      assert.equal(states.idle.closed, false, `${port.name}: idle closed too early`);
      assert.equal(states.slow.received, "", `${port.name}: no answer to half a request`);
      await waitFor(`${port.name}: the idle connection closed`, () => states.idle.closed, 10_000);
    }
    const healthz = await server.api("GET", "/healthz");
    assert.equal(healthz.status, 200);
    assert.doesNotMatch(server.proc.output, /"level":"error"/);
  } finally {
    for (const s of sockets) s.destroy();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HTTP and TLS ports close connections over --max-connections as they arrive", async () => {
  const dir = await tempDir("connections-cap");
  const server = await ServerProc.start(dir, ["--max-connections", "3"]);
  const sockets: Socket[] = [];
  try {
    for (const port of ports(server)) {
      const held = [await port.open(), await port.open(), await port.open()];
      sockets.push(...held);
      const heldStates = held.map(watch);
      const extra = await port.open().catch(() => null);
      if (extra) {
        sockets.push(extra);
        const state = watch(extra);
        extra.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        await waitFor(`${port.name}: the fourth connection closed`, () => state.closed, 5_000);
        assert.doesNotMatch(state.received, /200 OK/, `${port.name}: the fourth was served`);
      }
      assert.ok(heldStates.every((s) => !s.closed), `${port.name}: a held connection was closed`);
      for (const s of held) s.destroy();
      // Below the cap again: served.
      await waitFor(`${port.name}: a new connection served`, async () => {
        const again = await port.open();
        sockets.push(again);
        const state = watch(again);
        again.write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        await waitFor("an answer or a close", () => state.closed || state.received, 5_000);
        return state.received.includes("200 OK");
      });
    }
  } finally {
    for (const s of sockets) s.destroy();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
