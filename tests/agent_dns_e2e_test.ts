/**
 * End to end, issue 12: the agent answers DNS for the host's applications
 * from its own watch of the registry. A real server, a real agent serving
 * two `hello` apps (one registered with an IPv6 address) and `dig`
 * (Debian's dnsutils) asking over UDP and TCP: A, AAAA, SRV, a subset from a
 * DestinationPolicy, a short name, NXDOMAIN, a drained instance left out; an instance turning unhealthy
 * is out of the first answer after the agent learns it; the answers go on
 * while the server is down, also from an agent restarted meanwhile (its view
 * on disk); the agent's metrics count the queries.
 */
import assert from "node:assert/strict";
import { ServerProc, startAgent, startApp, tempDir, waitFor } from "./harness.ts";

/** `dig @127.0.0.1 -p PORT …`: the output lines. */
async function dig(port: number, ...args: string[]): Promise<string[]> {
  const out = await new Deno.Command("dig", {
    args: ["@127.0.0.1", "-p", String(port), "+time=1", "+tries=2", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.trim()).filter(Boolean);
}

const short = async (port: number, ...args: string[]) =>
  (await dig(port, "+short", ...args)).sort();
const status = (lines: string[]) =>
  lines.map((l) => /status: (\w+)/.exec(l)?.[1]).find((s) => s !== undefined);

Deno.test("agent DNS: dig gets A, AAAA, SRV, subsets, short names and NXDOMAIN; an unhealthy instance leaves the next answer; answers during an outage and after a restart in it; metrics", async () => {
  const dir = await tempDir("dns-e2e");
  const server = await ServerProc.start(dir);
  const one = await startApp();
  const two = await startApp();
  const file = `${dir}/healthy`;
  await Deno.writeTextFile(file, "");
  const config = `
node: {name: vm-1, address: 127.0.0.1}
heartbeat: {interval: 500ms}
services:
  - {name: web, id: web-1, port: ${one.port}, labels: {version: v1},
     check: {http: "http://127.0.0.1:${one.port}/healthz", interval: 200ms, unhealthyThreshold: 1}}
  - {name: web, id: web-2, port: ${two.port}, address: "::1", labels: {version: v2},
     check: {exec: [test, -f, "${file}"], interval: 200ms, unhealthyThreshold: 1}}
`;
  // Debug: the agent says when its view of the registry changed.
  const extraArgs = ["--log-level", "debug", "--keep-instances-on-exit"];
  let agent = await startAgent("vm-1", server, config, {
    joinToken: await server.joinToken({ namespace: "default" }),
    extraArgs,
  });
  try {
    const state = await waitFor("agent.json with dns and metrics", async () => {
      const s = JSON.parse(await Deno.readTextFile(`${agent.dataDir}/agent.json`));
      return typeof s.dns === "string" && typeof s.metrics === "string" ? s : undefined;
    });
    const port = Number(state.dns.split(":")[1]);
    const policy = await server.api("PUT", "/v1/policies/destinationpolicy/default/web", {
      body: {
        spec: {
          service: "web",
          subsets: [{ name: "v1", labels: { version: "v1" } }, {
            name: "v2",
            labels: { version: "v2" },
          }],
        },
      },
    });
    assert.ok([200, 201].includes(policy.status), JSON.stringify(policy.body));
    await waitFor(
      "both instances in the answers",
      async () =>
        (await short(port, "web.default.svc.ironmesh", "A")).join() === "127.0.0.1" &&
        (await short(port, "web.default.svc.ironmesh", "AAAA")).join() === "::1",
    );

    // SRV over UDP and TCP, with the instances' ports and their targets' addresses.
    const srv = await short(port, "web.default.svc.ironmesh", "SRV");
    assert.deepEqual(
      srv,
      [
        `1 1 ${one.port} 7f000001.addr.ironmesh.`,
        `1 1 ${two.port} 00000000000000000000000000000001.addr.ironmesh.`,
      ].sort(),
    );
    assert.deepEqual(await short(port, "+tcp", "web.default.svc.ironmesh", "SRV"), srv);
    const full = await dig(port, "web.default.svc.ironmesh", "SRV");
    assert.ok(full.some((l) => /7f000001\.addr\.ironmesh\.\s+\d+\s+IN\s+A\s+127\.0\.0\.1/.test(l)));
    // Subsets, the short name in the node's namespace, unknown names.
    await waitFor(
      "the subsets",
      async () => (await short(port, "v2.web.default.svc.ironmesh", "AAAA")).join() === "::1",
    );
    assert.deepEqual(await short(port, "v1.web.default.svc.ironmesh", "A"), ["127.0.0.1"]);
    assert.deepEqual(await short(port, "v1.web.default.svc.ironmesh", "AAAA"), []);
    assert.deepEqual(await short(port, "web.svc.ironmesh", "A"), ["127.0.0.1"]);
    assert.equal(status(await dig(port, "nope.default.svc.ironmesh", "A")), "NXDOMAIN");
    assert.equal(status(await dig(port, "v9.web.default.svc.ironmesh", "A")), "NXDOMAIN");
    assert.equal(status(await dig(port, "+tcp", "nope.default.svc.ironmesh")), "NXDOMAIN");
    const ttl = await dig(port, "+noall", "+answer", "web.default.svc.ironmesh", "A");
    assert.match(ttl[0]!, /\s5\s+IN\s+A\s+127\.0\.0\.1$/, "a TTL of 5 s");

    // A drained instance leaves the answers; undrained, it is back.
    for (const draining of [true, false]) {
      const res = await server.api("PATCH", "/v1/instances/web-1@vm-1", { body: { draining } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      await waitFor(
        draining ? "web-1 out of the answers" : "web-1 back in the answers",
        async () =>
          (await short(port, "web.default.svc.ironmesh", "A")).length === (draining ? 0 : 1),
      );
    }
    assert.deepEqual(await short(port, "web.default.svc.ironmesh", "AAAA"), ["::1"]);

    // web-2 turns unhealthy: the first answer after the agent learns it no longer has it.
    const mark = agent.proc.output.split("\n").length;
    await Deno.remove(file);
    await waitFor(
      "web-2 unhealthy in the registry",
      async () => (await server.instance("web-2@vm-1"))?.health === "unhealthy",
    );
    await waitFor(
      "the agent learning it",
      () =>
        agent.proc.output.split("\n").slice(mark).some((l) =>
          /"msg":"Registry view changed".*"list":"instances","items":1,/.test(l)
        ),
    );
    assert.deepEqual(await short(port, "web.default.svc.ironmesh", "AAAA"), []);
    assert.deepEqual(await short(port, "web.default.svc.ironmesh", "A"), ["127.0.0.1"]);
    const metrics = await (await fetch(`http://${state.metrics}/metrics`)).text();

    // The server goes away: the answers stay, also after the agent restarts meanwhile.
    await server.proc.stop("SIGKILL");
    await new Promise((r) => setTimeout(r, 1_500));
    assert.deepEqual(await short(port, "web.default.svc.ironmesh", "A"), ["127.0.0.1"]);
    assert.deepEqual(await short(port, "+tcp", "v1.web.default.svc.ironmesh", "A"), ["127.0.0.1"]);
    await agent.proc.stop("SIGTERM");
    agent = await startAgent("vm-1", server, config, { dataDir: agent.dataDir, extraArgs });
    const pid = agent.proc.pid;
    const restarted = await waitFor("agent.json of the restarted agent", async () => {
      const s = JSON.parse(await Deno.readTextFile(`${agent.dataDir}/agent.json`));
      return s.pid === pid && typeof s.dns === "string" ? s : undefined;
    });
    const again = Number(restarted.dns.split(":")[1]);
    await agent.proc.waitForLine(/"msg":"DNS view loaded"/);
    assert.deepEqual(await short(again, "web.default.svc.ironmesh", "A"), ["127.0.0.1"]);
    assert.deepEqual(await short(again, "v1.web.default.svc.ironmesh", "A"), ["127.0.0.1"]);
    assert.deepEqual(await short(again, "web.svc.ironmesh", "A"), ["127.0.0.1"]);
    assert.equal(status(await dig(again, "nope.default.svc.ironmesh", "A")), "NXDOMAIN");

    const count = (pattern: RegExp) => Number(pattern.exec(metrics)?.[1] ?? 0);
    assert.ok(count(/ironmesh_agent_dns_queries_total\{type="A",transport="udp"\} (\d+)/) > 5);
    assert.ok(
      count(/ironmesh_agent_dns_responses_total\{rcode="NXDOMAIN",transport="udp"\} (\d+)/) >= 2,
    );
    assert.ok(count(/ironmesh_agent_dns_queries_total\{type="SRV",transport="tcp"\} (\d+)/) >= 1);
  } catch (error) {
    console.error(`--- agent ---\n${agent.proc.output}\n--- server ---\n${server.proc.output}`);
    throw error;
  } finally {
    await agent.proc.stop();
    await server.proc.stop();
    await Promise.all([one.proc.stop(), two.proc.stop()]);
    for (const d of [dir, agent.dataDir]) await Deno.remove(d, { recursive: true }).catch(() => {});
  }
});
