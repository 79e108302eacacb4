/**
 * End to end: policies managed with the `ironmesh` CLI against a real server
 * process, the way operators and their CI do it: `apply -f` with many
 * documents, `--dry-run` with the proxies that would change, errors located
 * by file, line and document, history, rollback, explain and the audit log.
 */
import assert from "node:assert/strict";
import { runCli, ServerProc, tempDir } from "./harness.ts";

const POLICIES = `# The canary setup of echo.
apiVersion: ironmesh.io/v1
kind: DestinationPolicy
metadata: {name: echo, namespace: default}
spec:
  service: echo
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: ironmesh.io/v1
kind: TrafficRoute
metadata: {name: echo, namespace: default}
spec:
  service: echo
  rules:
    - match: {headers: {x-canary: {exact: "1"}}}
      split: [{subset: v2, weight: 100}]
    - split: [{subset: v1, weight: 90}, {subset: v2, weight: 10}]
`;

const BAD = `apiVersion: ironmesh.io/v1
kind: RateLimit
metadata: {name: echo}
spec:
  service: echo
  limit: {requests: 0, per: 1s}
---
apiVersion: ironmesh.io/v1
kind: TrafficRoute
metadata: {name: echo, namespace: default}
spec:
  service: echo
  rules:
    - split:
        - {subset: v1, weight: 90}
        - {subset: v3, weight: 10}
`;

Deno.test("e2e CLI: apply -f, dry run, located errors, history, rollback, explain, audit", async () => {
  const dir = await tempDir("policy-cli");
  const server = await ServerProc.start(dir);
  try {
    const env = { IRONMESH_SERVER: server.url, IRONMESH_TOKEN: server.adminToken };
    // echo, and a node whose sidecar sends to it: the proxy a dry run must find.
    assert.equal(
      (await server.api("PUT", "/v1/services/default/echo", {
        body: { ports: [{ port: 8080, protocol: "http" }] },
      })).status,
      201,
    );
    const agentToken = await server.token("agent", { node: "vm-1" });
    const registered = await server.api("PUT", "/v1/nodes/vm-1/registration", {
      token: agentToken,
      body: {
        hostname: "vm-1",
        addresses: ["127.0.0.1"],
        agentVersion: "e2e",
        heartbeatInterval: "5s",
        instances: [{ id: "echo", service: "echo", port: 8080, labels: { version: "v1" } }],
        upstreams: [{ service: "echo", localPort: 9001 }],
      },
    });
    assert.equal(registered.status, 200, JSON.stringify(registered.body));

    const file = `${dir}/echo.yaml`;
    await Deno.writeTextFile(file, POLICIES);

    // Dry run: what would change on which proxy, and nothing stored.
    const dry = await runCli(["apply", "-f", file, "--dry-run"], env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /trafficroute\/default\/echo created \(dry run\)/);
    assert.match(dry.stdout, /^sidecar vm-1:$/m);
    assert.match(dry.stdout, /^ {2}~ routes echo\.default:8080$/m);
    assert.match(dry.stdout, /^ {2}\+ clusters outbound\|8080\|v2\|echo\.default$/m);
    const notYet = await runCli(["get", "trafficroute", "echo"], env);
    assert.equal(notYet.code, 1);
    assert.match(notYet.stderr, /does not exist/);

    const applied = await runCli(["apply", "-f", file], env);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(
      applied.stdout.trim(),
      "destinationpolicy/default/echo created (revision 1)\ntrafficroute/default/echo created (revision 1)",
    );
    const unchanged = await runCli(["apply", "-f", file], env);
    assert.match(unchanged.stdout, /trafficroute\/default\/echo unchanged \(revision 1\)/);

    // Every problem of every document, located by file, line and document; nothing stored.
    const badFile = `${dir}/bad.yaml`;
    await Deno.writeTextFile(badFile, BAD);
    const bad = await runCli(["apply", "-f", badFile], env);
    assert.equal(bad.code, 1);
    const lineOf = (text: string) => BAD.split("\n").findIndex((l) => l.includes(text)) + 1;
    assert.match(bad.stderr, /Nothing was applied: 2 problems/);
    // A schema problem in one document does not hide a meaning problem in another.
    assert.ok(
      bad.stderr.includes(
        `${badFile}:${
          lineOf("requests: 0")
        }:11: document 1 (RateLimit echo): /spec/limit/requests:`,
      ),
      bad.stderr,
    );
    assert.ok(
      bad.stderr.includes(
        `${badFile}:${
          lineOf("subset: v3")
        }:12: document 2 (TrafficRoute default/echo): /spec/rules/0/split/1/subset: `,
      ),
      bad.stderr,
    );
    const rateLimits = await runCli(["get", "ratelimits", "-o", "json"], env);
    assert.deepEqual(
      JSON.parse(rateLimits.stdout).items,
      [],
      "the valid document was not stored either",
    );

    // A YAML syntax error names its line before anything is sent.
    await Deno.writeTextFile(`${dir}/broken.yaml`, "kind: TrafficRoute\nspec: {service: [\n");
    const broken = await runCli(["apply", "-f", `${dir}/broken.yaml`], env);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /broken\.yaml:\d+:\d+: /);

    // Change, look at history, roll back.
    await Deno.writeTextFile(
      file,
      POLICIES.replace("weight: 90}", "weight: 50}").replace("weight: 10}", "weight: 50}"),
    );
    assert.equal((await runCli(["apply", "-f", file], env)).code, 0);
    const history = await runCli(["history", "trafficroute", "default/echo"], env);
    assert.equal(history.code, 0, history.stderr);
    assert.match(history.stdout, /^1\s+create\s/m);
    assert.match(
      history.stdout,
      /^2\s+update\s.*\/spec\/rules\/1\/split\/0\/weight \/spec\/rules\/1\/split\/1\/weight$/m,
    );
    const rolled = await runCli(["rollback", "trafficroute", "echo", "--to", "1"], env);
    assert.equal(rolled.code, 0, rolled.stderr);
    assert.match(rolled.stdout, /now revision 3/);
    const now = JSON.parse(
      (await runCli(["get", "trafficroute", "echo", "-o", "json"], env)).stdout,
    );
    assert.equal(now.metadata.revision, 3);
    assert.equal(now.spec.rules[1].split[0].weight, 90);

    // Why vm-1's sidecar gets what it gets.
    const explained = await runCli(["explain", "vm-1", "-o", "json"], env);
    assert.equal(explained.code, 0, explained.stderr);
    const policies = JSON.parse(explained.stdout).policies.map((
      p: { kind: string; name: string; direction: string },
    ) => `${p.kind} ${p.name} ${p.direction}`);
    assert.deepEqual(policies, [
      "TrafficRoute echo outbound",
      "DestinationPolicy echo outbound",
    ]);

    const audit = await runCli(["audit", "--outcome", "refused", "-o", "json"], env);
    assert.equal(audit.code, 0, audit.stderr);
    const refused = JSON.parse(audit.stdout).items;
    assert.deepEqual(
      refused.map((a: { kind: string; status: number }) => `${a.kind} ${a.status}`),
      [
        "RateLimit 422",
        "TrafficRoute 422",
      ],
    );

    const deleted = await runCli(["delete", "trafficroute", "echo"], env);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /trafficroute\/default\/echo deleted/);

    // `delete` takes registry kinds too, as DESIGN.md's `ironmesh delete KIND NAME` promises.
    assert.equal((await runCli(["delete", "destinationpolicy", "echo"], env)).code, 0);
    const inUse = await runCli(["delete", "service", "default/echo"], env);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /still has instances/);
    const node = await runCli(["delete", "node", "vm-1"], env);
    assert.equal(node.code, 0, node.stderr);
    assert.equal(node.stdout.trim(), "node/vm-1 deleted");
    const svc = await runCli(["delete", "service", "default/echo"], env);
    assert.equal(svc.code, 0, svc.stderr);
    assert.equal(svc.stdout.trim(), "service/default/echo deleted");
    assert.equal((await server.api("GET", "/v1/services/default/echo")).status, 404);
    const missing = await runCli(["delete", "service", "default/echo"], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error: .*echo/m);
  } finally {
    await server.proc.stop();
  }
});
