import assert from "node:assert/strict";
import { problem, removeDataDir, startAgent, type TestAgent, waitFor } from "./_testing.ts";
import { nodeCalls, type ServedRequest, withRealServer } from "./_real_server_testing.ts";
import { parseCertificates } from "./pki.ts";
import { normalizeSerial } from "../ca/identity.ts";
import { renewalTime } from "./rotation.ts";

const VM1 = `
node: {name: vm-1, address: 127.0.0.1}
heartbeat: {interval: 100ms}
`;

Deno.test("renewalTime() falls between 50% and 80% of the lifetime", () => {
  const window = { start: 1_000, notAfter: 11_000 };
  assert.equal(renewalTime(window, () => 0), 6_000);
  assert.equal(renewalTime(window, () => 0.5), 7_500);
  assert.equal(renewalTime(window, () => 1), 9_000);
});

async function savedSerial(dataDir: string): Promise<string> {
  const pem = await Deno.readTextFile(`${dataDir}/identity/cert.pem`);
  return parseCertificates(pem, "cert.pem")[0]!.serialNumber;
}

Deno.test("runAgent() renews before expiry, twice, without a failed heartbeat", async () => {
  // Two-second certificates: with random 0.5 each renewal comes at 65% of
  // the lifetime, about 1.3 s after the previous one.
  let agent: TestAgent | undefined;
  let requests: ServedRequest[] = [];
  let issued: string[] = [];
  await withRealServer(async (server) => {
    ({ requests, issued } = server);
    agent = startAgent(VM1, { joinToken: await server.joinToken() });
    const keys: string[] = [];
    try {
      await waitFor(
        async () => {
          const key = await Deno.readTextFile(`${agent!.dataDir}/identity/key.pem`).catch(() => "");
          if (key !== "" && !keys.includes(key)) keys.push(key);
          return issued.length >= 3;
        },
        "two renewals",
        4_500,
      );
      await waitFor(
        () => nodeCalls(server).some((r) => r.peer.serial === issued[2]),
        "a heartbeat with the second renewed certificate",
      );
      assert.equal(normalizeSerial(await savedSerial(agent.dataDir)), issued[2]);
      const state = JSON.parse(await Deno.readTextFile(`${agent.dataDir}/agent.json`));
      assert.equal(normalizeSerial(state.certificate.serial), issued[2]);
      assert.ok(keys.length >= 2, "a new key pair per renewal");
    } finally {
      await agent.stop();
      await removeDataDir(agent.dataDir);
    }
  }, { leafTtlMs: 2_000 });
  const failed = requests.filter((r) => r.status === undefined || r.status >= 400);
  assert.deepEqual(failed.map((r) => `${r.method} ${r.path} ${r.status}`), []);
  assert.ok(nodeCalls({ requests }).filter((r) => r.method === "POST").length >= 10);
  const logs = agent!.logs();
  assert.ok(!logs.some((l) => l.level === "warn" || l.level === "error"));

  const renewals = requests.filter((r) => r.path === "/v1/ca/renew");
  // Each renewal presented the certificate it replaces, over mTLS.
  assert.deepEqual(renewals.slice(0, 2).map((r) => r.peer.serial), issued.slice(0, 2));
  assert.ok(renewals.every((r) => r.authorized));
  const renewed = logs.filter((l) => l.msg === "Certificate renewed");
  assert.deepEqual(
    renewed.slice(0, 2).map((l) => normalizeSerial(String(l.serial))),
    issued.slice(1, 3),
  );
  assert.ok(renewed.every((l) => typeof l.notAfter === "string" && typeof l.renewAt === "string"));
  assert.ok(logs.some((l) => l.msg === "Certificate renewal scheduled"));
});

Deno.test("runAgent() waits as long as a 429 Retry-After asks before renewing again", async () => {
  // The fault: the first renewal answers 429 with Retry-After: 1.
  let limited = 0;
  const fault = (request: ServedRequest) =>
    request.path === "/v1/ca/renew" && limited++ === 0
      ? problem(429, "Too many renewals", { "retry-after": "1" })
      : undefined;
  let agent: TestAgent | undefined;
  let requests: ServedRequest[] = [];
  await withRealServer(async (server) => {
    requests = server.requests;
    agent = startAgent(VM1, { joinToken: await server.joinToken() });
    try {
      await waitFor(() => server.issued.length >= 2, "a renewal after the 429", 4_500);
    } finally {
      await agent.stop();
      await removeDataDir(agent.dataDir);
    }
  }, { leafTtlMs: 4_000, fault });
  const [refused, accepted] = requests.filter((r) => r.path === "/v1/ca/renew");
  assert.equal(refused?.status, 429);
  assert.equal(accepted?.status, 200);
  const gap = accepted!.at - refused!.at;
  assert.ok(gap >= 990 && gap < 1_500, `retried after ${gap} ms`);
  const warning = agent!.logs().find((l) =>
    l.msg === "Certificate renewal rate-limited by the server"
  );
  assert.equal(warning?.retryIn, "1s");
});

Deno.test("runAgent() fetches and trusts a new bundle when a heartbeat reports it", async () => {
  let agent: TestAgent | undefined;
  let requests: ServedRequest[] = [];
  await withRealServer(async (server) => {
    requests = server.requests;
    agent = startAgent(VM1, { joinToken: await server.joinToken(), keepInstancesOnExit: true });
    const oldRootOnly = Deno.createHttpClient({ caCerts: [server.authority.bundle().pem] });
    let restarted: TestAgent | undefined;
    try {
      await waitFor(() => nodeCalls(server).length >= 2, "a heartbeat");
      const before = server.authority.bundle().fingerprint;
      // The server's own rotation: the new root is published in the bundle, not yet signing.
      await server.identity.startRotation();
      await server.tlsReloaded();
      const after = server.authority.bundle().fingerprint;
      assert.notEqual(after, before);
      await waitFor(async () => {
        const saved = JSON.parse(
          await Deno.readTextFile(`${agent!.dataDir}/identity/identity.json`),
        );
        return saved.bundleFingerprint === after;
      }, "the new bundle on disk");
      const bundle = await Deno.readTextFile(`${agent.dataDir}/identity/bundle.pem`);
      assert.equal(parseCertificates(bundle, "bundle.pem").length, 2);
      const refetch = server.requests.filter((r) => r.path === "/v1/ca/roots")[1];
      assert.equal(refetch?.authorized, true, "fetched over the agent's mTLS client");
      const seen = nodeCalls(server).length;
      await waitFor(() => nodeCalls(server).length >= seen + 2, "heartbeats after the swap");
      await agent.stop();

      // Every live node has the new bundle, so the server signs and serves
      // with the new root. A client that trusts only the old root cannot
      // reach it any more; the agent, restarted from its files, can.
      assert.equal(await server.identity.advanceRotation(), "switched");
      await server.tlsReloaded();
      await assert.rejects(fetch(`${server.url}/v1/ca/roots`, { client: oldRootOnly }));
      restarted = startAgent(VM1, { dataDir: agent.dataDir });
      const switched = performance.now();
      await waitFor(
        () => nodeCalls(server).filter((r) => r.at > switched && r.status === 200).length >= 2,
        "heartbeats to the server on the new root",
      );
    } finally {
      oldRootOnly.close();
      await restarted?.stop();
      await agent.stop();
      await removeDataDir(agent.dataDir);
    }
  });
  const failed = requests.filter((r) => r.status === undefined || r.status >= 400);
  assert.deepEqual(failed.map((r) => `${r.method} ${r.path} ${r.status}`), []);
  assert.ok(agent!.logs().some((l) => l.msg === "Trust bundle updated" && l.roots === 2));
});

Deno.test("runAgent() renews at once when a heartbeat asks, and only once", async () => {
  let agent: TestAgent | undefined;
  await withRealServer(async (server) => {
    agent = startAgent(VM1, { joinToken: await server.joinToken() });
    try {
      await waitFor(() => nodeCalls(server).length >= 2, "a heartbeat");
      // The server asks for renewal once it signs with a new root and the
      // agent's certificate chains to the old one.
      await server.identity.startRotation();
      const fingerprint = server.authority.bundle().fingerprint;
      await waitFor(async () => {
        const saved = JSON.parse(
          await Deno.readTextFile(`${agent!.dataDir}/identity/identity.json`),
        );
        return saved.bundleFingerprint === fingerprint;
      }, "the new bundle on disk");
      assert.equal(await server.identity.advanceRotation(), "switched");
      await waitFor(() => server.issued.length === 2, "a renewal");
      await waitFor(
        () => nodeCalls(server).filter((r) => r.peer.serial === server.issued[1]).length >= 3,
        "heartbeats with the renewed certificate",
      );
      assert.equal(
        server.issued.length,
        2,
        "a heartbeat in flight during the renewal does not renew again",
      );
    } finally {
      await agent.stop();
      await removeDataDir(agent.dataDir);
    }
  });
  assert.ok(agent!.logs().some((l) => l.msg === "Server asked for renewal"));
  assert.ok(!agent!.logs().some((l) => l.level === "warn" || l.level === "error"));
});
