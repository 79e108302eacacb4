/**
 * The quickstart's files (`examples/`) are what a new operator runs first:
 * they must stay valid as the agent configuration and the policy model move,
 * and its last step, a call through the mesh without Envoy, must go through.
 */
import assert from "node:assert/strict";
import { parseAgentConfig } from "../core/agent_config.ts";
import { API_VERSION, type PolicyDraft, policySet } from "../core/policy/model.ts";
import { checkPolicy, parsePolicy } from "../core/policy/validate.ts";
import { parseYamlDocuments } from "../core/validate.ts";
import { Proc, ROOT, ServerProc, startAgent, tempDir, waitFor } from "./harness.ts";

const read = (name: string) => Deno.readTextFile(new URL(`../examples/${name}`, import.meta.url));

Deno.test("examples/agent.yaml is a valid agent configuration", async () => {
  const config = parseAgentConfig(await read("agent.yaml"), "examples/agent.yaml");
  assert.deepEqual(config.services.map((s) => [s.name, s.port, s.protocol]), [
    ["hello", 8080, "http"],
    ["echo", 9090, "grpc"],
  ]);
  assert.equal(config.services[0]!.inboundPort, 18080);
  assert.deepEqual(config.upstreams.map((u) => [u.service, u.localPort]), [
    ["hello.default", 19080],
  ]);
});

Deno.test("examples/policies.yaml applies cleanly to the quickstart's hello service", async () => {
  const docs = parseYamlDocuments(await read("policies.yaml"), "examples/policies.yaml");
  const drafts = docs.map((d) => {
    const parsed = parsePolicy(d.value);
    assert.deepEqual(parsed.problems, [], `document ${d.index + 1}`);
    return parsed.draft as PolicyDraft;
  });
  assert.deepEqual(drafts.map((d) => d.kind), ["DestinationPolicy", "TrafficRoute", "RateLimit"]);
  const stamp = { revision: 1, createdAt: "", updatedAt: "", updatedBy: "" };
  const policies = policySet(
    drafts.map((d) => ({ ...d, apiVersion: API_VERSION, metadata: { ...d.metadata, ...stamp } })),
  );
  const services = new Map([["default/hello", {
    ports: [{ port: 8080, protocol: "http" as const }],
  }]]);
  for (const draft of drafts) {
    assert.deepEqual(checkPolicy(draft, { services, policies }), { errors: [], warnings: [] });
  }
});

Deno.test("the quickstart's last step: examples/echo_grpc.ts calls echo through the mesh, no Envoy", async () => {
  const dir = await tempDir("quickstart-traffic");
  const server = await ServerProc.start(`${dir}/server`);
  const echo = new Proc("echo", ["run", "-A", `${ROOT}examples/echo_grpc.ts`, "serve", "0"]);
  let agent: Proc | undefined;
  try {
    const port = Number((await echo.waitForLine(/echo listening on 127\.0\.0\.1:(\d+)/))[1]);
    // The quickstart's agent configuration, with the port this test's echo got.
    const config = (await read("agent.yaml")).replaceAll("9090", String(port));
    assert.notEqual(config, await read("agent.yaml"), "examples/agent.yaml registers echo on 9090");
    const { grpc } = JSON.parse(await Deno.readTextFile(`${dir}/server/server.json`));
    const started = await startAgent("vm-1", server, config, {
      joinToken: await server.joinToken({ serviceAccount: "hello", node: "vm-1" }),
      extraArgs: ["--xds-server", grpc, "--local-xds-addr", "127.0.0.1:0"],
    });
    agent = started.proc;
    await waitFor(
      "echo@vm-1 healthy",
      async () => (await server.instance("echo@vm-1"))?.health === "healthy",
      30_000,
    );
    await waitFor("agent.json with the local xDS address", async () => {
      return JSON.parse(await Deno.readTextFile(`${started.dataDir}/agent.json`)).xds;
    });

    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}examples/echo_grpc.ts`,
        "call",
        "echo.default",
        "--agent-dir",
        started.dataDir,
        "--count",
        "3",
      ],
      cwd: ROOT,
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    assert.equal(out.code, 0, dec.decode(out.stderr));
    assert.deepEqual(dec.decode(out.stdout).trim().split("\n"), [
      `echo on 127.0.0.1:${port}: hello 1`,
      `echo on 127.0.0.1:${port}: hello 2`,
      `echo on 127.0.0.1:${port}: hello 3`,
    ]);
  } finally {
    await agent?.stop();
    await echo.stop();
    await server.proc.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
