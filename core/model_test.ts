import assert from "node:assert/strict";
import { ENVOY_ADMIN } from "./envoy_bootstrap.ts";
import { nodeRegistrationSchema } from "./model.ts";

// Issue 17 item 12: Envoy binds every upstream on 127.0.0.1:<localPort>; a port already in use
// fails the bind, and Envoy refuses the whole listener update (LDS NACK), so the server refuses
// such a registration instead of letting the sidecar break.
Deno.test("nodeRegistrationSchema refuses an upstream localPort the host already uses", () => {
  const result = nodeRegistrationSchema.safeParse({
    hostname: "vm-1",
    addresses: ["10.0.0.1"],
    agentVersion: "test",
    heartbeatInterval: "5s",
    instances: [{ id: "a", service: "a", port: 8080 }],
    upstreams: [
      { service: "x", localPort: 8080 },
      { service: "y", localPort: ENVOY_ADMIN.port },
      { service: "z", localPort: 9001 },
    ],
  });
  assert.equal(result.success, false);
  assert.deepEqual(
    result.error!.issues.map((i) => [i.path.join("/"), i.message]),
    [
      [
        "upstreams/0/localPort",
        "Local port 8080 is already an instance's port on this node: each upstream needs its own",
      ],
      [
        "upstreams/1/localPort",
        "Local port 15000 is already Envoy's admin port on this node: each upstream needs its own",
      ],
    ],
  );
});

// Issue 15: a proxyless gRPC server gets one server Listener per port of its host, with one
// service's RBAC; two gRPC services on one port of one node could not both have theirs.
Deno.test("nodeRegistrationSchema refuses two gRPC services on one port of a node", () => {
  const registration = (instances: unknown[]) =>
    nodeRegistrationSchema.safeParse({
      hostname: "vm-1",
      addresses: ["10.0.0.1"],
      agentVersion: "test",
      heartbeatInterval: "5s",
      instances,
    });
  const refused = registration([
    { id: "a", service: "echo", port: 50051, protocol: "grpc" },
    { id: "b", service: "echo", port: 50051, protocol: "grpc", namespace: "other" },
  ]);
  assert.equal(refused.success, false);
  assert.deepEqual(refused.error!.issues.map((i) => [i.path.join("/"), i.message]), [[
    "instances/1/port",
    'Port 50051 is already the gRPC port of service "echo.default" on this node: one gRPC service per port',
  ]]);
  // Two instances of one service, or another protocol on the port, are fine.
  assert.equal(
    registration([
      { id: "a", service: "echo", port: 50051, protocol: "grpc" },
      { id: "b", service: "echo", port: 50051, protocol: "grpc" },
      { id: "c", service: "web", port: 50051, protocol: "http2" },
    ]).success,
    true,
  );
});
