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
