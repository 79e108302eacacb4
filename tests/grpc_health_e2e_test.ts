/**
 * `grpc.health.v1.Health/Check` on the real server answers a malformed request
 * at once with `INVALID_ARGUMENT` (issue 14 item 9): invalid protobuf, and a
 * 100 KB service name. Sent as raw bytes, so the client's own encoder cannot
 * fix them. The plaintext xDS port runs the same gRPC server as the mTLS port.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { ServerProc, tempDir } from "./harness.ts";

const raw = (b: Buffer) => b;
const RawHealth = grpc.makeGenericClientConstructor({
  check: {
    path: "/grpc.health.v1.Health/Check",
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
}, "Health");

function check(client: grpc.Client, body: Buffer): Promise<grpc.ServiceError | Buffer> {
  return new Promise((resolve) => {
    // deno-lint-ignore no-explicit-any -- a generic client's methods are not typed
    (client as any).check(
      body,
      { deadline: Date.now() + 10_000 },
      (error: grpc.ServiceError | null, res: Buffer) => resolve(error ?? res),
    );
  });
}

Deno.test("gRPC health answers INVALID_ARGUMENT to invalid protobuf and an oversized service name", async () => {
  const dir = await tempDir("grpc-health");
  const server = await ServerProc.start(dir, ["--xds-plaintext-addr", "127.0.0.1:0"]);
  const info = JSON.parse(await Deno.readTextFile(`${dir}/server.json`));
  const client = new RawHealth(info.xdsPlaintext, grpc.credentials.createInsecure());
  try {
    // Field 1, length 255, then one byte: truncated.
    const truncated = await check(client, Buffer.from([0x0a, 0xff, 0x01, 0x61]));
    assert.ok(truncated instanceof Error, "an error");
    assert.equal((truncated as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT);
    assert.match((truncated as grpc.ServiceError).details, /^Malformed HealthCheckRequest: /);

    // Field 1, length 100,000 (varint a0 8d 06).
    const name = Buffer.concat([
      Buffer.from([0x0a, 0xa0, 0x8d, 0x06]),
      Buffer.alloc(100_000, 0x61),
    ]);
    const long = await check(client, name);
    assert.ok(long instanceof Error, "an error");
    assert.equal((long as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT);
    assert.equal(
      (long as grpc.ServiceError).details,
      "Service name of 100000 characters: at most 256 are accepted",
    );

    // A good request still works: "" → SERVING (status 1).
    const ok = await check(client, Buffer.alloc(0));
    assert.ok(!(ok instanceof Error), String(ok));
    assert.deepEqual([...(ok as Buffer)], [0x08, 0x01]);
  } finally {
    client.close();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
