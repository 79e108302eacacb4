import assert from "node:assert/strict";
import {
  nodeRequests,
  problem,
  removeDataDir,
  startAgent,
  type TestAgent,
  waitFor,
} from "./_testing.ts";
import { startTlsServerDouble } from "./_tls_server_testing.ts";
import { parseCertificates } from "./pki.ts";
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
  const double = await startTlsServerDouble({ leafLifetimeMs: 2_000 });
  const agent = startAgent(VM1, { joinToken: double.joinToken() });
  const keys: string[] = [];
  try {
    await waitFor(
      async () => {
        const key = await Deno.readTextFile(`${agent.dataDir}/identity/key.pem`).catch(() => "");
        if (key !== "" && !keys.includes(key)) keys.push(key);
        return double.issued.length >= 3;
      },
      "two renewals",
      4_500,
    );
    await waitFor(
      () => nodeRequests(double).some((r) => r.peer.serial === double.issued[2]),
      "a heartbeat with the second renewed certificate",
    );
    assert.equal(await savedSerial(agent.dataDir), double.issued[2]);
    const state = JSON.parse(await Deno.readTextFile(`${agent.dataDir}/agent.json`));
    assert.equal(state.certificate.serial, double.issued[2]);
  } finally {
    await agent.stop();
    await double.close();
    await removeDataDir(agent.dataDir);
  }
  const failed = double.requests.filter((r) => r.status === undefined || r.status >= 400);
  assert.deepEqual(failed.map((r) => `${r.method} ${r.path} ${r.status}`), []);
  assert.ok(nodeRequests(double).filter((r) => r.method === "POST").length >= 10);
  assert.ok(!agent.logs().some((l) => l.level === "warn" || l.level === "error"));

  const renewals = double.requests.filter((r) => r.path === "/v1/ca/renew");
  // Each renewal presented the certificate it replaces, over mTLS.
  assert.deepEqual(renewals.slice(0, 2).map((r) => r.peer.serial), double.issued.slice(0, 2));
  const renewed = agent.logs().filter((l) => l.msg === "Certificate renewed");
  assert.deepEqual(renewed.slice(0, 2).map((l) => l.serial), double.issued.slice(1, 3));
  assert.ok(renewed.every((l) => typeof l.notAfter === "string" && typeof l.renewAt === "string"));
  assert.ok(keys.length >= 2, "a new key pair per renewal");
  assert.ok(agent.logs().some((l) => l.msg === "Certificate renewal scheduled"));
});

Deno.test("runAgent() waits as long as a 429 Retry-After asks before renewing again", async () => {
  let limited = 0;
  const double = await startTlsServerDouble({
    leafLifetimeMs: 4_000,
    answer: (request) =>
      request.path === "/v1/ca/renew" && limited++ === 0
        ? problem(429, "Too many renewals", { "retry-after": "1" })
        : undefined,
  });
  const agent = startAgent(VM1, { joinToken: double.joinToken() });
  try {
    await waitFor(() => double.issued.length >= 2, "a renewal after the 429", 4_500);
  } finally {
    await agent.stop();
    await double.close();
    await removeDataDir(agent.dataDir);
  }
  const [refused, accepted] = double.requests.filter((r) => r.path === "/v1/ca/renew");
  assert.equal(refused?.status, 429);
  assert.equal(accepted?.status, 200);
  const gap = accepted!.at - refused!.at;
  assert.ok(gap >= 990 && gap < 1_500, `retried after ${gap} ms`);
  const warning = agent.logs().find((l) =>
    l.msg === "Certificate renewal rate-limited by the server"
  );
  assert.equal(warning?.retryIn, "1s");
});

Deno.test("runAgent() fetches and trusts a new bundle when a heartbeat reports it", async () => {
  const double = await startTlsServerDouble();
  const agent = startAgent(VM1, { joinToken: double.joinToken(), keepInstancesOnExit: true });
  const oldRootOnly = Deno.createHttpClient({ caCerts: [double.ca.rootPem] });
  let restarted: TestAgent | undefined;
  try {
    await waitFor(() => nodeRequests(double).length >= 2, "a heartbeat");
    const before = double.bundleFingerprint;
    await double.rotateRoot();
    assert.notEqual(double.bundleFingerprint, before);
    await waitFor(async () => {
      const saved = JSON.parse(
        await Deno.readTextFile(`${agent.dataDir}/identity/identity.json`),
      );
      return saved.bundleFingerprint === double.bundleFingerprint;
    }, "the new bundle on disk");
    const bundle = await Deno.readTextFile(`${agent.dataDir}/identity/bundle.pem`);
    assert.equal(parseCertificates(bundle, "bundle.pem").length, 2);
    const refetch = double.requests.filter((r) => r.path === "/v1/ca/roots")[1];
    assert.equal(refetch?.authorized, true, "fetched over the agent's mTLS client");
    const seen = nodeRequests(double).length;
    await waitFor(() => nodeRequests(double).length >= seen + 2, "heartbeats after the swap");
    await agent.stop();

    // A client that trusts only the old root cannot reach the server any
    // more; the agent, restarted from its files, can.
    await double.switchServingCertificate();
    await assert.rejects(fetch(`${double.url}/v1/ca/roots`, { client: oldRootOnly }));
    restarted = startAgent(VM1, { dataDir: agent.dataDir });
    const switched = performance.now();
    await waitFor(
      () => nodeRequests(double).filter((r) => r.at > switched && r.status === 200).length >= 2,
      "heartbeats to the server on the new root",
    );
  } finally {
    oldRootOnly.close();
    await restarted?.stop();
    await agent.stop();
    await double.close();
    await removeDataDir(agent.dataDir);
  }
  const failed = double.requests.filter((r) => r.status === undefined || r.status >= 400);
  assert.deepEqual(failed.map((r) => `${r.method} ${r.path} ${r.status}`), []);
  assert.ok(agent.logs().some((l) => l.msg === "Trust bundle updated" && l.roots === 2));
});

Deno.test("runAgent() renews at once when a heartbeat asks, and only once", async () => {
  const double = await startTlsServerDouble();
  const agent = startAgent(VM1, { joinToken: double.joinToken() });
  try {
    await waitFor(() => nodeRequests(double).length >= 2, "a heartbeat");
    double.askRenewal();
    await waitFor(() => double.issued.length === 2, "a renewal");
    await waitFor(
      () => nodeRequests(double).filter((r) => r.peer.serial === double.issued[1]).length >= 3,
      "heartbeats with the renewed certificate",
    );
    assert.equal(
      double.issued.length,
      2,
      "a heartbeat in flight during the renewal does not renew again",
    );
  } finally {
    await agent.stop();
    await double.close();
    await removeDataDir(agent.dataDir);
  }
  assert.ok(agent.logs().some((l) => l.msg === "Server asked for renewal"));
  assert.ok(!agent.logs().some((l) => l.level === "warn" || l.level === "error"));
});
