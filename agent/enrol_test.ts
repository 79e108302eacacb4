import assert from "node:assert/strict";
import { InvalidError } from "../core/errors.ts";
import { Buffer } from "node:buffer";
import { problem, removeDataDir, startAgent, type TestAgent, waitFor } from "./_testing.ts";
import { nodeCalls, type RealServer, withRealServer } from "./_real_server_testing.ts";
import { keyMatchesCertificate, parseCertificates } from "./pki.ts";
import { makeCsr } from "../ca/_testing.ts";
import { normalizeSerial } from "../ca/identity.ts";
import { decodePem, type PemBlock } from "../ca/pem.ts";
import { CLOCK_SKEW_MS, issueLeaf } from "../ca/pipeline.ts";
import { x509 } from "../ca/x509.ts";

const VM1 = `
node: {name: vm-1, address: 127.0.0.1}
heartbeat: {interval: 100ms}
`;

const ROOT = new URL("..", import.meta.url).pathname;

async function mode(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Awaits an agent that must fail to start within 3 s; returns its error. */
async function failure(agent: TestAgent): Promise<InvalidError> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve("still running after 3s"), 3_000);
  });
  const error = await Promise.race([
    agent.done.then(() => "a clean stop", (e: unknown) => e),
    timeout,
  ]);
  clearTimeout(timer);
  if (typeof error === "string") await agent.stop();
  assert.ok(error instanceof InvalidError, `Expected an InvalidError, got ${error}`);
  return error;
}

Deno.test("runAgent() enrols with a join token, keeps its key on the host and saves its identity", async () => {
  await withRealServer(async (server) => {
    const token = await server.joinToken({
      node: "vm-1",
      namespace: "shop",
      serviceAccount: "api",
    });
    const agent = startAgent(VM1, { joinToken: token });
    try {
      await waitFor(() => nodeCalls(server).length >= 2, "a registration and a heartbeat");
    } finally {
      await agent.stop();
    }
    try {
      const [roots, enrolment] = server.requests;
      assert.deepEqual([roots?.method, roots?.path, roots?.status], ["GET", "/v1/ca/roots", 200]);
      assert.deepEqual([enrolment?.method, enrolment?.path, enrolment?.status], [
        "POST",
        "/v1/ca/enrol",
        200,
      ]);
      const body = JSON.parse(enrolment!.text) as Record<string, string>;
      assert.deepEqual(Object.keys(body).sort(), ["csr", "node", "token"]);
      assert.equal(body.token, token);
      assert.equal(body.node, "vm-1");
      const csr = new x509.Pkcs10CertificateRequest(body.csr!);
      assert.equal(await csr.verify(), true);
      assert.equal(csr.subject, "CN=vm-1");
      const san = csr.extensions.find((e) => e instanceof x509.SubjectAlternativeNameExtension);
      assert.ok(san instanceof x509.SubjectAlternativeNameExtension, "the CSR names its identity");
      assert.deepEqual(san.names.items.map((n) => [n.type, n.value]), [
        ["url", "spiffe://ironmesh.test/ns/shop/sa/api"],
      ]);
      for (const request of server.requests) {
        assert.ok(!request.text.includes("PRIVATE KEY"), `${request.path} carries no private key`);
      }

      const dir = `${agent.dataDir}/identity`;
      assert.equal(await mode(dir), 0o700);
      assert.equal(await mode(`${dir}/key.pem`), 0o600);
      assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(), [
        "bundle.pem",
        "cert.pem",
        "identity.json",
        "key.pem",
      ]);
      const keyPem = await Deno.readTextFile(`${dir}/key.pem`);
      assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
      const chain = parseCertificates(await Deno.readTextFile(`${dir}/cert.pem`), "cert.pem");
      assert.equal(chain.length, 2, "leaf then intermediate");
      assert.equal(chain[0]!.issuer, chain[1]!.subject);
      assert.equal(
        await chain[0]!.verify({ publicKey: chain[1]!.publicKey, signatureOnly: true }),
        true,
      );
      assert.equal(await keyMatchesCertificate(keyPem, chain[0]!), true);
      const serial = normalizeSerial(chain[0]!.serialNumber);
      const calls = nodeCalls(server);
      assert.ok(calls.every((r) => r.authorized && r.peer.serial === serial));
      assert.equal(await Deno.readTextFile(`${dir}/bundle.pem`), server.authority.bundle().pem);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/identity.json`)), {
        node: "vm-1",
        identity: "spiffe://ironmesh.test/ns/shop/sa/api",
        server: server.url,
        notAfter: chain[0]!.notAfter.toISOString(),
        bundleFingerprint: server.authority.bundle().fingerprint,
      });
      assert.ok(!agent.rawLogs.some((l) => l.includes(token)), "the token never reaches the log");
      assert.ok(
        agent.logs().some((l) =>
          l.msg === "Enrolled" && normalizeSerial(String(l.serial)) === serial
        ),
      );
    } finally {
      await removeDataDir(agent.dataDir);
    }
  });
});

/**
 * `token` with its pin replaced: the fault of a server that presents roots
 * other than the one the token pins, as a man in the middle would. The
 * signature no longer matches, which only the server could tell.
 */
function repinned(token: string, pin: string): string {
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
  const forged = Buffer.from(JSON.stringify({ ...claims, pin })).toString("base64url");
  return [header, forged, signature].join(".");
}

Deno.test("runAgent() refuses to enrol when no root matches the pin, and writes nothing", async () => {
  await withRealServer(async (server) => {
    const pin = "sha256:" + "0".repeat(64);
    const agent = startAgent(VM1, { joinToken: repinned(await server.joinToken(), pin) });
    try {
      const error = await failure(agent);
      assert.equal(
        error.message,
        `Server "${server.url}" presented no root matching the join token's pin "${pin}": refusing to enrol (possible man-in-the-middle)`,
      );
      assert.deepEqual(server.requests.map((r) => r.path), ["/v1/ca/roots"]);
      assert.equal(await exists(`${agent.dataDir}/identity`), false);
    } finally {
      await removeDataDir(agent.dataDir);
    }
  });
});

Deno.test("runAgent() says a join token pinning a retired root predates the rotation", async () => {
  await withRealServer(async (server) => {
    const token = await server.joinToken({ node: "vm-1" });
    // A whole root rotation on the server: with no node enrolled, each step's condition holds.
    await server.identity.startRotation();
    assert.equal(await server.identity.advanceRotation(), "switched");
    assert.equal(await server.identity.advanceRotation(), "steady");
    await server.tlsReloaded();
    const agent = startAgent(VM1, { joinToken: token });
    try {
      const error = await failure(agent);
      assert.equal(
        error.message,
        `The join token predates a root rotation on server "${server.url}": it pins the root of ` +
          "CA generation 1, which the server has retired, so it can no longer enrol a host. " +
          "Create a new join token on the server: " +
          "ironmesh token create --kind join --namespace default --service-account web --node vm-1",
      );
      assert.doesNotMatch(error.message, /man-in-the-middle/);
      assert.equal(await exists(`${agent.dataDir}/identity`), false);
    } finally {
      await removeDataDir(agent.dataDir);
    }
  });
});

Deno.test("runAgent() refuses a join token for another node before calling the server", async () => {
  await withRealServer(async (server) => {
    const agent = startAgent(VM1, { joinToken: await server.joinToken({ node: "vm-2" }) });
    try {
      const error = await failure(agent);
      assert.match(
        error.message,
        /^Join token is for node "vm-2" but this agent's node name is "vm-1": set node\.name .* create a token for "vm-1" \(ironmesh token create --kind join --namespace default --service-account web --node vm-1\)$/,
      );
      assert.deepEqual(server.requests, []);
    } finally {
      await removeDataDir(agent.dataDir);
    }
  });
});

Deno.test("runAgent() explains a spent join token", async () => {
  // The server's own refusal, word for word: the double's wording had drifted from it.
  await withRealServer(async (server) => {
    const token = await server.joinToken();
    const first = startAgent(VM1, { joinToken: token });
    let second: TestAgent | undefined;
    try {
      await waitFor(() => nodeCalls(server).length >= 1, "the first enrolment");
      second = startAgent(VM1, { joinToken: token });
      const error = await failure(second);
      assert.match(
        error.message,
        /refused the join token \(409 Conflict: Join token "[^"]+" has already been used \(1 of 1\): create a new one\): a join token works once and only until it expires; create a new one with ironmesh token create --kind join/,
      );
    } finally {
      await first.stop();
      await removeDataDir(first.dataDir);
      if (second) await removeDataDir(second.dataDir);
    }
  });
});

Deno.test("runAgent() retries enrolment while the server is unavailable", async () => {
  // The fault: the first two fetches of the roots answer 503.
  let refusals = 0;
  const fault = (request: { path: string }) =>
    request.path === "/v1/ca/roots" && refusals++ < 2 ? problem(503, "Starting") : undefined;
  let agent: TestAgent | undefined;
  await withRealServer(async (server) => {
    agent = startAgent(VM1, { joinToken: await server.joinToken() });
    try {
      await waitFor(() => nodeCalls(server).length >= 1, "the registration");
    } finally {
      await agent.stop();
      await removeDataDir(agent.dataDir);
    }
  }, { fault });
  const retries = agent!.logs().filter((l) => l.msg === "Enrolment failed; retrying");
  assert.equal(retries.length, 2);
  assert.equal(retries[0]?.error, "503 Error: Starting");
});

Deno.test("runAgent() resumes with the saved identity after a restart, without a token", async () => {
  await withRealServer(async (server) => {
    const first = startAgent(VM1, {
      joinToken: await server.joinToken(),
      keepInstancesOnExit: true,
    });
    const dataDir = first.dataDir;
    try {
      await waitFor(() => nodeCalls(server).length >= 2, "the first run's heartbeat");
      await first.stop();
      const serial = nodeCalls(server)[0]!.peer.serial;
      const seen = server.requests.length;

      const second = startAgent(VM1, { dataDir });
      await waitFor(() => nodeCalls(server).length >= 5, "the second run's heartbeat");
      await second.stop();
      const again = server.requests.slice(seen);
      assert.ok(!again.some((r) => r.path.startsWith("/v1/ca/")), "no second enrolment");
      assert.ok(again.every((r) => r.authorized && r.peer.serial === serial && r.status! < 300));
      assert.ok(second.logs().some((l) => l.msg === "Resuming with the saved identity"));

      // A token given anyway is not spent.
      const spare = await server.joinToken();
      const third = startAgent(VM1, { dataDir, joinToken: spare });
      await waitFor(() => third.logs().some((l) => l.msg === "Node registered"), "a registration");
      await third.stop();
      assert.ok(
        third.logs().some((l) => l.msg === "Join token ignored: this host already has an identity"),
      );
      assert.equal(server.requests.filter((r) => r.path === "/v1/ca/enrol").length, 1);
    } finally {
      await removeDataDir(dataDir);
    }
  });
});

/**
 * Replaces the saved certificate with one of the server's CA for the same
 * key whose lifetime ended 30 s ago: the pipeline run as if two minutes ago,
 * with a 90 s lifetime. Returns its notAfter.
 */
async function expireCertificate(dataDir: string, server: RealServer): Promise<string> {
  const dir = `${dataDir}/identity`;
  const [{ der }] = decodePem(await Deno.readTextFile(`${dir}/key.pem`)) as [PemBlock];
  const algorithm = { name: "ECDSA", namedCurve: "P-256" };
  const privateKey = await crypto.subtle.importKey("pkcs8", der, algorithm, true, ["sign"]);
  const { d: _d, key_ops: _ops, ...jwk } = await crypto.subtle.exportKey("jwk", privateKey);
  const publicKey = await crypto.subtle.importKey("jwk", jwk, algorithm, true, ["verify"]);
  const csrPem = await makeCsr({ keys: { privateKey, publicKey }, subject: "CN=vm-1" });
  const request = { csrPem, node: "vm-1", namespace: "default", serviceAccount: "web" };
  const then = Date.now() - 2 * CLOCK_SKEW_MS;
  const leaf = await issueLeaf(server.authority.signer(), { ...request, ttlMs: 90_000 }, {
    now: then,
    maxTtlMs: 3_600_000,
  });
  assert.ok(Date.parse(leaf.notAfter) < Date.now(), "expired");
  await Deno.writeTextFile(`${dir}/cert.pem`, leaf.chainPem);
  return leaf.notAfter;
}

/**
 * Runs `test` with the real server and a stopped agent whose saved
 * certificate expired (see {@link expireCertificate}); removes its data
 * directory afterwards.
 */
async function withExpiredAgent(
  test: (server: RealServer, first: TestAgent, notAfter: string) => Promise<void>,
): Promise<void> {
  await withRealServer(async (server) => {
    const first = startAgent(VM1, {
      joinToken: await server.joinToken(),
      keepInstancesOnExit: true,
    });
    try {
      await waitFor(() => nodeCalls(server).length >= 1, "the registration");
      await first.stop();
      await test(server, first, await expireCertificate(first.dataDir, server));
    } finally {
      await removeDataDir(first.dataDir);
    }
  });
}

Deno.test("ironmesh agent exits non-zero with the fix when its certificate expired and no token is given", async () => {
  await withExpiredAgent(async (server, first, notAfter) => {
    await Deno.writeTextFile(`${first.dataDir}/agent.yaml`, VM1);
    const seen = server.requests.length;
    const env = Object.fromEntries(
      Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("IRONMESH_")),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}cmd/main.ts`,
        "agent",
        "--config",
        `${first.dataDir}/agent.yaml`,
        "--data-dir",
        first.dataDir,
      ],
      cwd: ROOT,
      clearEnv: true,
      env: { ...env, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, stderr);
    assert.equal(
      stderr.trim().split("\n").at(-1),
      `Error: Certificate for node "vm-1" expired at ${notAfter}: an expired certificate cannot renew itself. Create a join token (ironmesh token create --kind join --namespace default --service-account web --node vm-1) and restart the agent with --join-token`,
    );
    assert.equal(server.requests.length, seen, "no call to the server");
  });
});

Deno.test("runAgent() enrols again when its certificate expired and a join token is given", async () => {
  await withExpiredAgent(async (server, first) => {
    // A token for this node, as the agent's error advises: the server still
    // holds the first certificate as valid (only the copy on disk expired),
    // and a token for no node may not take a held node over.
    const second = startAgent(VM1, {
      dataDir: first.dataDir,
      joinToken: await server.joinToken({ node: "vm-1" }),
    });
    await waitFor(() => nodeCalls(server).length >= 3, "a registration with the new identity");
    await second.stop();
    assert.equal(server.issued.length, 2);
    assert.equal(nodeCalls(server).at(-2)?.peer.serial, server.issued[1]);
    assert.ok(
      second.logs().some((l) =>
        l.msg === "Certificate expired; enrolling again with the join token"
      ),
    );
  });
});

Deno.test("runAgent() without identity or join token says how to get one", async () => {
  const agent = startAgent(VM1, {});
  try {
    const error = await failure(agent);
    assert.equal(
      error.message,
      `No identity in "${agent.dataDir}/identity" and no join token: create one (ironmesh token create --kind join --namespace NS --service-account SA --node vm-1) and start the agent with --join-token or --join-token-file`,
    );
  } finally {
    await removeDataDir(agent.dataDir);
  }
});
