import assert from "node:assert/strict";
import { encodeRequest, Http1Connection } from "./http1.ts";

Deno.test("Http1Connection carries several requests over one keep-alive connection", async () => {
  const peers = new Set<string>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req, info) => {
      peers.add(`${info.remoteAddr.hostname}:${info.remoteAddr.port}`);
      const body = await req.text();
      const status = req.headers.get("authorization") === "Bearer t" ? 200 : 401;
      return Response.json({ method: req.method, path: new URL(req.url).pathname, body }, {
        status,
      });
    },
  );
  const conn = await Http1Connection.open("127.0.0.1", server.addr.port);
  try {
    const post = encodeRequest("POST", "/v1/x", { authorization: "Bearer t" }, '{"a":1}');
    for (let i = 0; i < 3; i++) {
      const res = await conn.send(post);
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(new TextDecoder().decode(res.body)), {
        method: "POST",
        path: "/v1/x",
        body: '{"a":1}',
      });
    }
    const denied = await conn.send(encodeRequest("GET", "/", {}));
    assert.equal(denied.status, 401);
    assert.equal(peers.size, 1, "every request used the same connection");
  } finally {
    conn.close();
    await server.shutdown();
  }
});
