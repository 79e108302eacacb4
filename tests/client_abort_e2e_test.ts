/**
 * A client that hangs up in the middle of a request body is the client's
 * doing (issue 14 item 9): the server counts it as a 499 (nginx's "client
 * closed request"), logs it without a stack, and keeps serving; no 5xx.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { ServerProc, tempDir, waitFor } from "./harness.ts";

Deno.test("a client hanging up mid-body is counted and logged as a client error, on both HTTP ports", async () => {
  const dir = await tempDir("client-abort");
  const server = await ServerProc.start(dir);
  try {
    const http = new URL(server.url);
    const https = new URL(server.tlsUrl);
    const head = [
      "PUT /v1/services/default/web HTTP/1.1",
      "Host: x",
      `Authorization: Bearer ${server.adminToken}`,
      "Content-Type: application/json",
      "Content-Length: 1000",
      "",
      '{"ports": [',
    ].join("\r\n");
    for (
      const open of [
        () => connect(Number(http.port), http.hostname),
        () =>
          tlsConnect({ port: Number(https.port), host: https.hostname, rejectUnauthorized: false }),
      ]
    ) {
      const socket = open();
      socket.on("error", () => {});
      await new Promise<void>((resolve) =>
        socket.once(
          socket.constructor.name === "TLSSocket" ? "secureConnect" : "connect",
          () => resolve(),
        )
      );
      socket.write(head);
      await new Promise((r) => setTimeout(r, 300));
      socket.destroy();
    }
    const count = await waitFor("both hang-ups counted", async () => {
      const metrics = (await server.api("GET", "/metrics", { token: null })).body as string;
      const m =
        /^ironmesh_http_requests_total\{route="\/v1\/services\/:namespace\/:name",method="PUT",status="499"\} (\d+)$/m
          .exec(metrics);
      return m && Number(m[1]) >= 2 ? metrics : null;
    });
    assert.doesNotMatch(count, /status="5\d\d"/, "no 5xx");
    assert.match(server.proc.output, /"status":499/);
    assert.doesNotMatch(server.proc.output, /"level":"error"/);
    assert.doesNotMatch(server.proc.output, /"stack"/);
    // Nothing was stored, and the server still serves.
    assert.equal((await server.api("GET", "/v1/services/default/web")).status, 404);
  } finally {
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
