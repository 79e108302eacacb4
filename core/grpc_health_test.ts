import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import {
  decodeHealthCheckRequest,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  encodeHealthCheckResponse,
  type HealthCheckRequest,
  type HealthCheckResponse,
  healthServiceDefinition,
  SERVING_STATUS,
  servingStatusName,
} from "./grpc_health.ts";

Deno.test("encodeHealthCheckRequest() writes field 1 as a string", () => {
  const bytes = encodeHealthCheckRequest({ service: "web" });
  assert.deepEqual([...bytes], [0x0a, 3, 0x77, 0x65, 0x62]);
  assert.deepEqual(decodeHealthCheckRequest(bytes), { service: "web" });
  assert.deepEqual(decodeHealthCheckRequest(new Uint8Array()), { service: "" });
});

Deno.test("encodeHealthCheckResponse() writes the status as an enum", () => {
  const bytes = encodeHealthCheckResponse({ status: SERVING_STATUS.NOT_SERVING });
  assert.deepEqual([...bytes], [0x08, 2]);
  assert.deepEqual(decodeHealthCheckResponse(bytes), { status: 2 });
  assert.deepEqual(decodeHealthCheckResponse(new Uint8Array()), { status: 0 });
});

Deno.test("decodeHealthCheckResponse() reads an unknown status as UNKNOWN", () => {
  assert.deepEqual(decodeHealthCheckResponse(new Uint8Array([0x08, 9])), { status: 0 });
  assert.equal(servingStatusName(1), "SERVING");
  assert.equal(servingStatusName(9), "UNRECOGNIZED(9)");
});

Deno.test("healthServiceDefinition serves and calls Check over real gRPC", async () => {
  const server = new grpc.Server();
  const seen: string[] = [];
  server.addService(healthServiceDefinition, {
    check(
      call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
      callback: grpc.sendUnaryData<HealthCheckResponse>,
    ) {
      seen.push(call.request.service);
      if (call.request.service === "missing") {
        callback({ code: grpc.status.NOT_FOUND, details: "Unknown service" });
        return;
      }
      callback(null, {
        status: call.request.service === "" ? SERVING_STATUS.SERVING : SERVING_STATUS.NOT_SERVING,
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, port) => error ? reject(error) : resolve(port),
    )
  );
  const Health = grpc.makeGenericClientConstructor(
    healthServiceDefinition,
    "grpc.health.v1.Health",
  );
  const client = new Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const check = (service: string) =>
    new Promise<HealthCheckResponse>((resolve, reject) =>
      client.check!(
        { service },
        { deadline: Date.now() + 2_000 },
        (error: grpc.ServiceError | null, response: HealthCheckResponse) =>
          error ? reject(error) : resolve(response),
      )
    );
  try {
    assert.deepEqual(await check(""), { status: SERVING_STATUS.SERVING });
    assert.deepEqual(await check("web"), { status: SERVING_STATUS.NOT_SERVING });
    await assert.rejects(check("missing"), (error: grpc.ServiceError) => {
      assert.equal(error.code, grpc.status.NOT_FOUND);
      return true;
    });
    assert.deepEqual(seen, ["", "web", "missing"]);
  } finally {
    client.close();
    server.forceShutdown();
  }
});
