import assert from "node:assert/strict";
import { parseAgentConfig } from "../core/agent_config.ts";
import { InvalidError } from "../core/errors.ts";
import { heartbeatSchema, nodeRegistrationSchema } from "../core/model.ts";
import { VERSION } from "../core/version.ts";
import {
  type CheckReport,
  defaultAddress,
  heartbeatBody,
  registrationBody,
  resolveNode,
} from "./registration.ts";

const HOST = {
  hostname: "VM-7.Example.com",
  interfaces: [
    { family: "IPv6", address: "fe80::1" },
    { family: "IPv4", address: "127.0.0.1" },
    { family: "IPv4", address: "169.254.3.4" },
    { family: "IPv4", address: "10.1.2.3" },
    { family: "IPv4", address: "10.9.9.9" },
  ],
};

Deno.test("defaultAddress() takes the first routable IPv4 address", () => {
  assert.equal(defaultAddress(HOST.interfaces), "10.1.2.3");
  assert.equal(defaultAddress([{ family: "IPv4", address: "127.0.0.1" }]), "127.0.0.1");
  assert.equal(defaultAddress([]), "127.0.0.1");
});

Deno.test("resolveNode() defaults the name to the lower-cased host name", () => {
  assert.deepEqual(resolveNode({ labels: {} }, HOST), {
    name: "vm-7.example.com",
    hostname: "VM-7.Example.com",
    address: "10.1.2.3",
    labels: {},
  });
  assert.deepEqual(
    resolveNode({ name: "vm-1", address: "192.168.0.2", labels: { zone: "a" } }, HOST),
    { name: "vm-1", hostname: "VM-7.Example.com", address: "192.168.0.2", labels: { zone: "a" } },
  );
});

Deno.test("resolveNode() refuses a host name that is not a node name", () => {
  assert.throws(
    () => resolveNode({ labels: {} }, { hostname: "my_host", interfaces: [] }),
    (error: InvalidError) => {
      assert.ok(error instanceof InvalidError);
      assert.match(error.message, /host name "my_host".*set node\.name/);
      return true;
    },
  );
});

const CONFIG = parseAgentConfig(
  `
heartbeat: {interval: 1m30s}
services:
  - {name: web, port: 8080, inboundPort: 15001, labels: {version: v1}, check: {tcp: "127.0.0.1:8080"}}
  - {name: web, id: web-2, namespace: shop, address: 10.0.0.9, port: 8081, protocol: grpc}
upstreams:
  - {service: api.shop, localPort: 9001}
  - {service: db.data, localPort: 9002, port: 5433}
`,
  "agent.yaml",
);
const NODE = { name: "vm-1", hostname: "vm-1", address: "10.0.0.5", labels: { zone: "a" } };
const REPORTS = new Map<string, CheckReport>([["web", { status: "failing", output: "refused" }]]);

Deno.test("registrationBody() matches nodeRegistrationSchema", () => {
  const body = registrationBody(NODE, CONFIG, REPORTS);
  assert.deepEqual(body, {
    hostname: "vm-1",
    addresses: ["10.0.0.5"],
    labels: { zone: "a" },
    agentVersion: VERSION,
    heartbeatInterval: "1m30s",
    instances: [
      {
        id: "web",
        namespace: "default",
        service: "web",
        address: "10.0.0.5",
        port: 8080,
        inboundPort: 15001,
        protocol: "http",
        labels: { version: "v1" },
        check: "failing",
        output: "refused",
      },
      {
        id: "web-2",
        namespace: "shop",
        service: "web",
        address: "10.0.0.9",
        port: 8081,
        protocol: "grpc",
        labels: {},
        check: "none",
        output: "",
      },
    ],
    upstreams: [
      { service: "api", namespace: "shop", localPort: 9001 },
      { service: "db", namespace: "data", localPort: 9002, port: 5433 },
    ],
    conditions: [],
  });
  const parsed = nodeRegistrationSchema.parse(body);
  assert.equal(parsed.heartbeatInterval, 90_000);
  assert.equal(parsed.instances[1]?.inboundPort, undefined);
  // The node's conditions go along as they are, and pass the server's schema.
  const condition = {
    type: "SidecarNotRunning" as const,
    reason: "EnvoyNotFound",
    message: "Sidecar ports are declared but no Envoy runs",
  };
  const withCondition = registrationBody(NODE, CONFIG, REPORTS, [condition]);
  assert.deepEqual(nodeRegistrationSchema.parse(withCondition).conditions, [condition]);
});

Deno.test("heartbeatBody() reports every instance and matches heartbeatSchema", () => {
  const body = heartbeatBody(CONFIG, REPORTS);
  assert.deepEqual(body, {
    checks: [
      { id: "web", status: "failing", output: "refused" },
      { id: "web-2", status: "none", output: "" },
    ],
  });
  heartbeatSchema.parse(body);
});
