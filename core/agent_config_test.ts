import assert from "node:assert/strict";
import { parseAgentConfig } from "./agent_config.ts";
import { ConfigFileError } from "./validate.ts";

const SAMPLE = `
node:
  name: vm-1
  address: 10.0.0.5
  labels: {region: eu-west-1, zone: eu-west-1a}
heartbeat: {interval: 2s}
services:
  - name: web
    namespace: shop
    port: 8080
    labels: {version: v1}
    check:
      http: "http://127.0.0.1:8080/healthz"
      interval: 10s
      timeout: 2s
      healthyThreshold: 2
      unhealthyThreshold: 4
  - name: web
    id: web-admin
    address: 127.0.0.1
    port: 9090
    protocol: grpc
    check: {grpc: "[::1]:9090", grpcService: admin}
  - name: db
    port: 5432
    protocol: tcp
    check: {tcp: "localhost:5432"}
  - name: batch
    port: 7000
    check: {exec: ["/usr/bin/check", "--quick"], interval: 500ms}
upstreams:
  - service: api.default
    localPort: 9001
`;

function problemsOf(text: string): ConfigFileError {
  try {
    parseAgentConfig(text, "agent.yaml");
  } catch (error) {
    assert.ok(error instanceof ConfigFileError, String(error));
    return error;
  }
  assert.fail("expected a ConfigFileError");
}

Deno.test("parseAgentConfig() reads the documented sample", () => {
  const config = parseAgentConfig(SAMPLE, "agent.yaml");
  assert.deepEqual(config.node, {
    name: "vm-1",
    address: "10.0.0.5",
    labels: { region: "eu-west-1", zone: "eu-west-1a" },
  });
  assert.deepEqual(config.heartbeat, { intervalMs: 2_000 });
  assert.equal(config.services.length, 4);
  assert.deepEqual(config.services[0], {
    name: "web",
    id: "web",
    namespace: "shop",
    port: 8080,
    protocol: "http",
    labels: { version: "v1" },
    check: {
      target: { kind: "http", url: "http://127.0.0.1:8080/healthz" },
      intervalMs: 10_000,
      timeoutMs: 2_000,
      healthyThreshold: 2,
      unhealthyThreshold: 4,
    },
  });
  assert.equal(config.services[1]?.id, "web-admin");
  assert.equal(config.services[1]?.address, "127.0.0.1");
  assert.deepEqual(config.services[1]?.check?.target, {
    kind: "grpc",
    hostname: "::1",
    port: 9090,
    service: "admin",
  });
  assert.deepEqual(config.services[2]?.check?.target, {
    kind: "tcp",
    hostname: "localhost",
    port: 5432,
  });
  assert.deepEqual(config.services[3]?.check?.target, {
    kind: "exec",
    command: ["/usr/bin/check", "--quick"],
  });
  assert.deepEqual(config.upstreams, [{ service: "api.default", localPort: 9001 }]);
});

Deno.test("parseAgentConfig() applies defaults to an empty file", () => {
  assert.deepEqual(parseAgentConfig("", "agent.yaml"), {
    node: { labels: {} },
    heartbeat: { intervalMs: 5_000 },
    services: [],
    upstreams: [],
    dns: { domain: "ironmesh", ttlMs: 5_000, forward: false },
    proxyless: { refreshIntervalMs: 5_000 },
  });
});

Deno.test("parseAgentConfig() refuses two gRPC services on one port, naming the file and field", () => {
  assert.throws(
    () =>
      parseAgentConfig(
        "services:\n  - {name: echo, port: 50051, protocol: grpc}\n  - {name: greet, port: 50051, protocol: grpc}\n",
        "a.yaml",
      ),
    /a\.yaml:3:.*\/services\/1\/port: Port 50051 is already the gRPC port of service "echo\.default"/,
  );
});

Deno.test("parseAgentConfig() reads proxyless and refuses a key group that is no group name", () => {
  assert.deepEqual(
    parseAgentConfig("proxyless: {keyGroup: grpc-apps, refreshInterval: 1s}", "a.yaml").proxyless,
    { keyGroup: "grpc-apps", refreshIntervalMs: 1_000 },
  );
  assert.throws(
    () => parseAgentConfig("proxyless: {keyGroup: 'no such/group'}", "a.yaml"),
    /proxyless\/keyGroup/,
  );
});

Deno.test("parseAgentConfig() defaults a service and its check", () => {
  const config = parseAgentConfig(
    'services: [{name: web, port: 80, check: {tcp: "127.0.0.1:80"}}]',
    "agent.json",
  );
  assert.deepEqual(config.services[0], {
    name: "web",
    id: "web",
    namespace: "default",
    port: 80,
    protocol: "http",
    labels: {},
    check: {
      target: { kind: "tcp", hostname: "127.0.0.1", port: 80 },
      intervalMs: 5_000,
      timeoutMs: 1_000,
      healthyThreshold: 1,
      unhealthyThreshold: 3,
    },
  });
});

Deno.test("parseAgentConfig() lowers the default timeout to a shorter interval", () => {
  const config = parseAgentConfig(
    'services: [{name: web, port: 80, check: {tcp: "127.0.0.1:80", interval: 200ms}}]',
    "agent.yaml",
  );
  assert.equal(config.services[0]?.check?.timeoutMs, 200);
});

Deno.test("parseAgentConfig() refuses an unknown field and names its line", () => {
  const error = problemsOf(
    "node:\n  name: vm-1\nservices:\n  - name: web\n    port: 80\n    prot: tcp\n",
  );
  assert.equal(error.fileProblems.length, 1);
  assert.deepEqual(
    { ...error.fileProblems[0], column: undefined },
    {
      file: "agent.yaml",
      line: 6,
      column: undefined,
      pointer: "/services/0/prot",
      message: 'Unknown field "prot"',
    },
  );
  assert.match(error.message, /agent\.yaml:6:\d+: \/services\/0\/prot: Unknown field "prot"/);
});

Deno.test("parseAgentConfig() refuses a check with two kinds", () => {
  const error = problemsOf(
    'services:\n  - name: web\n    port: 80\n    check:\n      http: "http://127.0.0.1/"\n      tcp: "127.0.0.1:80"\n',
  );
  assert.equal(error.fileProblems[0]?.pointer, "/services/0/check/tcp");
  assert.equal(error.fileProblems[0]?.line, 6);
  assert.match(error.fileProblems[0]!.message, /exactly one of http, tcp, grpc or exec/);
});

Deno.test("parseAgentConfig() refuses a check with no kind", () => {
  const error = problemsOf("services:\n  - name: web\n    port: 80\n    check: {interval: 1s}\n");
  assert.equal(error.fileProblems[0]?.pointer, "/services/0/check");
  assert.match(error.fileProblems[0]!.message, /Missing check kind/);
});

Deno.test("parseAgentConfig() refuses a timeout longer than the interval", () => {
  const error = problemsOf(
    'services:\n  - name: web\n    port: 80\n    check:\n      tcp: "127.0.0.1:80"\n      interval: 1s\n      timeout: 2s\n',
  );
  assert.equal(error.fileProblems[0]?.pointer, "/services/0/check/timeout");
  assert.equal(error.fileProblems[0]?.line, 7);
});

Deno.test("parseAgentConfig() refuses out-of-range intervals and bad addresses", () => {
  const error = problemsOf(
    [
      "node: {name: VM_1, address: not-an-ip}",
      "heartbeat: {interval: 50ms}",
      'services: [{name: web, port: 80, check: {tcp: "127.0.0.1:99999"}}]',
      "upstreams: [{service: api, localPort: 9001}]",
    ].join("\n"),
  );
  assert.deepEqual(error.fileProblems.map((p) => p.pointer).sort(), [
    "/heartbeat/interval",
    "/node/address",
    "/node/name",
    "/services/0/check/tcp",
    "/upstreams/0/service",
  ]);
});

Deno.test("parseAgentConfig() refuses duplicate instance ids and local ports", () => {
  const error = problemsOf(
    [
      "services:",
      "  - {name: web, port: 80}",
      "  - {name: api, id: web, port: 81}",
      "upstreams:",
      "  - {service: a.default, localPort: 9001}",
      "  - {service: b.default, localPort: 9001}",
    ].join("\n"),
  );
  assert.deepEqual(error.fileProblems.map((p) => [p.pointer, p.line]), [
    ["/services/1/id", 3],
    ["/upstreams/1/localPort", 6],
  ]);
});

Deno.test("parseAgentConfig() refuses grpcService without grpc", () => {
  const error = problemsOf(
    'services: [{name: web, port: 80, check: {tcp: "127.0.0.1:80", grpcService: x}}]',
  );
  assert.equal(error.fileProblems[0]?.pointer, "/services/0/check/grpcService");
});

Deno.test("parseAgentConfig() reads inboundPort and an upstream's port", () => {
  const config = parseAgentConfig(
    [
      "services:",
      "  - {name: web, port: 8080, inboundPort: 15001}",
      "  - {name: cache, port: 6379, protocol: tcp}",
      "upstreams:",
      "  - {service: api.shop, localPort: 9001, port: 8443}",
    ].join("\n"),
    "agent.yaml",
  );
  assert.equal(config.services[0]?.inboundPort, 15001);
  assert.equal(config.services[1]?.inboundPort, undefined);
  assert.deepEqual(config.upstreams, [{ service: "api.shop", localPort: 9001, port: 8443 }]);
});

Deno.test("parseAgentConfig() refuses an inboundPort taken twice, by an app or by an upstream", () => {
  const error = problemsOf(
    [
      "services:",
      "  - {name: web, port: 8080, inboundPort: 15001}",
      "  - {name: api, port: 8081, inboundPort: 15001}",
      "  - {name: db, port: 5432, inboundPort: 8080}",
      "  - {name: mq, port: 5672, inboundPort: 9001}",
      "  - {name: big, port: 5673, inboundPort: 70000}",
      "upstreams:",
      "  - {service: a.default, localPort: 9001}",
    ].join("\n"),
  );
  const problems = error.fileProblems.map((p) => [p.pointer, p.line, p.message.split(" on ")[0]]);
  assert.deepEqual(problems.sort((a, b) => String(a[0]).localeCompare(String(b[0]))), [
    ["/services/1/inboundPort", 3, "Port 15001 is already the inboundPort of another service"],
    ["/services/2/inboundPort", 4, "Port 8080 is already a service's port"],
    ["/services/3/inboundPort", 5, "Port 9001 is already an upstream's localPort"],
    ["/services/4/inboundPort", 6, "Must be between 1 and 65535"],
  ]);
});

Deno.test("parseAgentConfig() refuses an upstream localPort Envoy could not bind", () => {
  const problems = (text: string) =>
    problemsOf(text).fileProblems.map((p) => [p.pointer, p.line, p.message]);
  assert.deepEqual(
    problems([
      "services:",
      "  - {name: web, port: 8080}",
      "upstreams:",
      "  - {service: a.default, localPort: 8080}",
      "  - {service: b.default, localPort: 15000}",
      "  - {service: c.default, localPort: 15010}",
    ].join("\n")),
    [
      [
        "/upstreams/0/localPort",
        4,
        "Port 8080 is already a service's port on this node: give each upstream's localPort its own port",
      ],
      [
        "/upstreams/1/localPort",
        5,
        "Port 15000 is already Envoy's admin port on this node: give each upstream's localPort its own port",
      ],
      [
        "/upstreams/2/localPort",
        6,
        "Port 15010 is already the agent's local xDS port on this node: give each upstream's localPort its own port",
      ],
    ],
  );
  // The local xDS port is the configured one.
  assert.deepEqual(
    problems([
      "localXdsAddr: 127.0.0.1:16010",
      "upstreams:",
      "  - {service: c.default, localPort: 15010}",
      "  - {service: d.default, localPort: 16010}",
    ].join("\n")).map((p) => p[0]),
    ["/upstreams/1/localPort"],
  );
});
