/**
 * End to end: one CA across `ironmesh server` replicas on one throwaway
 * PostgreSQL. The CA's keys live in the database encrypted under the
 * passphrase every replica is given; certificates and join tokens of one
 * replica are good on every other, a revocation anywhere is enforced
 * everywhere, and a root rotation moved on by the leader reaches them all.
 */
import assert from "node:assert/strict";
import { request } from "node:https";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { sharedCluster } from "../store/_postgres_testing.ts";
import { caPassphraseArgs, runCli, ServerProc, tempDir, waitFor } from "./harness.ts";

const cluster = await sharedCluster();
const passphrase = await caPassphraseArgs("the replicas' passphrase");

/** Starts `n` replicas on `url` at the same moment, so their first starts race for the CA. */
async function startTogether(url: string, n: number, extra: string[] = []): Promise<ServerProc[]> {
  const dirs = await Promise.all(Array.from({ length: n }, (_, i) => tempDir(`ca-replica-${i}`)));
  return await Promise.all(
    dirs.map((dir) => ServerProc.start(dir, ["--store", url, ...passphrase, ...extra])),
  );
}

async function stopAll(replicas: ServerProc[]): Promise<void> {
  for (const r of replicas) {
    await r.proc.stop();
    await Deno.remove(r.dataDir, { recursive: true }).catch(() => {});
  }
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `${cmd} ${args.join(" ")}: ${text}`);
  return text;
}

/** A P-256 key and a CSR for `node`, made by openssl as an agent's would be. */
async function keyAndCsr(dir: string, node: string): Promise<{ key: string; csr: string }> {
  await run("openssl", [
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-subj",
    `/CN=${node}`,
    "-keyout",
    `${dir}/${node}.key`,
    "-out",
    `${dir}/${node}.csr`,
  ]);
  return {
    key: await Deno.readTextFile(`${dir}/${node}.key`),
    csr: await Deno.readTextFile(`${dir}/${node}.csr`),
  };
}

/** The trust bundle a replica serves, as PEM. */
async function bundlePem(replica: ServerProc): Promise<string> {
  const res = await fetch(`${replica.url}/v1/ca/roots?format=pem`);
  assert.equal(res.status, 200);
  return await res.text();
}

/** The fingerprints of the roots a replica serves. */
async function rootFingerprints(replica: ServerProc): Promise<string[]> {
  const res = await replica.api("GET", "/v1/ca/roots");
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.roots.map((r: { fingerprint: string }) => r.fingerprint);
}

/** Opens a TLS connection to a replica's mTLS port with a client certificate. */
function openMtls(replica: ServerProc, cert: string, key: string): Promise<TLSSocket> {
  const url = new URL(replica.tlsUrl);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host: url.hostname, port: Number(url.port), cert, key, rejectUnauthorized: false },
      () => resolve(socket),
    );
    socket.once("error", reject);
  });
}

/** `POST /v1/ca/renew` over mTLS with an empty body: 422 for a trusted caller, 401 otherwise. */
async function renewStatus(replica: ServerProc, cert: string, key: string): Promise<number> {
  const socket = await openMtls(replica, cert, key);
  const url = new URL(replica.tlsUrl);
  return await new Promise<number>((resolve, reject) => {
    let received = "";
    socket.on("data", (chunk) => {
      received += String(chunk);
      const status = /^HTTP\/1\.1 (\d{3})/.exec(received)?.[1];
      if (status) {
        socket.destroy();
        resolve(Number(status));
      }
    });
    socket.once("error", reject);
    socket.once("close", () => reject(new Error(`Connection closed: ${received}`)));
    socket.write(
      `POST /v1/ca/renew HTTP/1.1\r\nHost: ${url.host}\r\ncontent-type: application/json\r\n` +
        "content-length: 2\r\nconnection: close\r\n\r\n{}",
    );
  });
}

/** Verifies `certificatePem` (leaf first, then its intermediate) against `bundle` with openssl. */
async function verifyWith(dir: string, bundle: string, certificatePem: string): Promise<string> {
  const name = crypto.randomUUID();
  await Deno.writeTextFile(`${dir}/${name}-roots.pem`, bundle);
  await Deno.writeTextFile(`${dir}/${name}-chain.pem`, certificatePem);
  return await run("openssl", [
    "verify",
    "-CAfile",
    `${dir}/${name}-roots.pem`,
    "-untrusted",
    `${dir}/${name}-chain.pem`,
    `${dir}/${name}-chain.pem`,
  ]);
}

/** Enrols `node` through `replica` with `token`; returns the certificate chain and its key. */
async function enrol(replica: ServerProc, token: string, dir: string, node: string) {
  const { key, csr } = await keyAndCsr(dir, node);
  const res = await fetch(`${replica.url}/v1/ca/enrol`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token, csr, node }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return { cert: body.certificate as string, key, serial: body.serial as string };
}

Deno.test("e2e replicas CA: replicas started together share one CA; a join token from A enrols on B; certificates of one verify under the others' bundles", async () => {
  const url = await cluster.createDatabase();
  const work = await tempDir("ca-work");
  const [a, b, c] = await startTogether(url, 3) as [ServerProc, ServerProc, ServerProc];
  try {
    const roots = await rootFingerprints(a);
    assert.equal(roots.length, 1);
    assert.deepEqual(await rootFingerprints(b), roots, "B serves A's root");
    assert.deepEqual(await rootFingerprints(c), roots, "C serves A's root");
    // No CA files in any data directory: the material is in the database.
    for (const r of [a, b, c]) {
      await assert.rejects(Deno.stat(`${r.dataDir}/ca`), Deno.errors.NotFound);
      await assert.rejects(Deno.stat(`${r.dataDir}/token-signing.key`), Deno.errors.NotFound);
    }

    // A join token made by A is verified by B (same signing key, same store).
    const onB = await enrol(b, await a.joinToken({ node: "vm-b" }), work, "vm-b");
    // And one made by C enrols on A.
    const onA = await enrol(a, await c.joinToken({ node: "vm-a" }), work, "vm-a");
    // Each certificate chains to the roots every replica serves.
    for (const r of [a, b, c]) {
      const bundle = await bundlePem(r);
      await verifyWith(work, bundle, onB.cert);
      await verifyWith(work, bundle, onA.cert);
    }
    // And every replica's mTLS port accepts them (422: trusted, but the empty body is refused).
    for (const r of [a, b, c]) {
      assert.equal(await renewStatus(r, onB.cert, onB.key), 422);
      assert.equal(await renewStatus(r, onA.cert, onA.key), 422);
    }
    // A replica started later loads the same CA.
    const late = await ServerProc.start(await tempDir("ca-late"), ["--store", url, ...passphrase]);
    try {
      assert.deepEqual(await rootFingerprints(late), roots);
      assert.equal(await renewStatus(late, onB.cert, onB.key), 422);
    } finally {
      await stopAll([late]);
    }
  } finally {
    await stopAll([a, b, c]);
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("e2e replicas CA: a replica without the CA key passphrase, or with a wrong one, refuses to start and says why", async () => {
  const url = await cluster.createDatabase();
  const [a] = await startTogether(url, 1) as [ServerProc];
  const dir = await tempDir("ca-refused");
  try {
    const common = [
      "server",
      "--data-dir",
      dir,
      "--store",
      url,
      "--http-addr",
      "127.0.0.1:0",
      "--https-addr",
      "127.0.0.1:0",
      "--grpc-addr",
      "127.0.0.1:0",
    ];
    const without = await runCli(common);
    assert.equal(without.code, 1, without.stderr);
    assert.match(without.stderr, /without the CA key passphrase/);
    assert.match(without.stderr, /--ca-key-passphrase-file/);
    assert.match(without.stderr, /IRONMESH_CA_KEY_PASSPHRASE/);

    const wrong = await runCli([...common, ...await caPassphraseArgs("not the replicas' one")]);
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.match(wrong.stderr, /CA key passphrase/);
    assert.match(wrong.stderr, /is not the one its keys were encrypted with/);
    assert.doesNotMatch(wrong.stderr, /\n\s+at /, "no stack trace");
    // The replica that has the right one is unaffected.
    assert.equal((await a.api("GET", "/readyz")).status, 200);
  } finally {
    await stopAll([a]);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("e2e replicas CA: a node decommissioned on A is refused by B and C within 1 s, and its connections there are closed", async () => {
  const url = await cluster.createDatabase();
  const work = await tempDir("ca-revoke");
  // Long connection timeouts: a connection closed within a second is closed by the revocation.
  const [a, b, c] = await startTogether(url, 3, [
    "--header-timeout",
    "60s",
    "--idle-timeout",
    "60s",
  ]) as [ServerProc, ServerProc, ServerProc];
  try {
    const node = await enrol(a, await a.joinToken({ node: "vm-r" }), work, "vm-r");
    for (const r of [b, c]) assert.equal(await renewStatus(r, node.cert, node.key), 422);
    // Connections held open to B and C, as an agent's would be.
    const held = await Promise.all([b, c].map((r) => openMtls(r, node.cert, node.key)));
    const closedAt = held.map((socket) => {
      const closed = Promise.withResolvers<number>();
      socket.on("error", () => {});
      socket.once("close", () => closed.resolve(performance.now()));
      return closed.promise;
    });

    const revokedAt = performance.now();
    assert.equal((await a.api("DELETE", "/v1/nodes/vm-r")).status, 204);
    const refusedAt = await Promise.all(
      [b, c].map((r) =>
        waitFor(`the replica to refuse vm-r`, async () => {
          return await renewStatus(r, node.cert, node.key) === 401 && performance.now();
        }, 5_000)
      ),
    );
    for (const at of refusedAt) {
      assert.ok(at - revokedAt < 1_000, `refused after ${at - revokedAt} ms`);
    }
    for (const at of await Promise.all(closedAt)) {
      assert.ok(at - revokedAt < 1_000, `connection closed after ${at - revokedAt} ms`);
    }
  } finally {
    await stopAll([a, b, c]);
    await Deno.remove(work, { recursive: true });
  }
});

/** Which replica says it leads. */
async function leaderAmong(replicas: ServerProc[]): Promise<ServerProc | null> {
  for (const r of replicas) {
    if ((await r.api("GET", "/readyz")).body.leader?.leading) return r;
  }
  return null;
}

Deno.test("e2e replicas CA: a root rotation started on a follower is moved on by the leader and ends with every replica serving the new root", async () => {
  const url = await cluster.createDatabase();
  const replicas = await startTogether(url, 3);
  try {
    const leader = await waitFor("a leader", () => leaderAmong(replicas));
    const follower = replicas.find((r) => r !== leader)!;
    const [oldRoot] = await rootFingerprints(follower);

    const started = await follower.api("POST", "/v1/ca/rotation");
    assert.equal(started.status, 202, JSON.stringify(started.body));
    // With no live node to wait for, the leader switches signing and retires the old root.
    const newRoots = await waitFor("every replica to serve only the new root", async () => {
      const seen = await Promise.all(replicas.map(rootFingerprints));
      const first = seen[0]!;
      return first.length === 1 && first[0] !== oldRoot &&
        seen.every((s) => s.join() === first.join()) && first;
    }, 15_000);
    for (const r of replicas) {
      const status = await r.api("GET", "/v1/ca/status");
      assert.equal(status.body.stage, "steady");
      assert.equal(status.body.signingRoot, newRoots[0]);
    }
    // The steps were the leader's alone.
    const steppers = replicas.filter((r) => /signing switched to the new CA/.test(r.proc.output));
    assert.deepEqual(steppers, [leader]);
    // And every replica's TLS port now serves a certificate of the new root.
    const bundle = await bundlePem(follower);
    for (const r of replicas) {
      await waitFor("the TLS port to serve a certificate of the new root", async () => {
        const url = new URL(r.tlsUrl);
        return await new Promise<boolean>((resolve) => {
          const socket = tlsConnect(
            { host: url.hostname, port: Number(url.port), ca: bundle, servername: "localhost" },
            () => {
              resolve(socket.authorized);
              socket.destroy();
            },
          );
          socket.once("error", () => resolve(false));
        });
      }, 5_000);
    }
  } finally {
    await stopAll(replicas);
  }
});

/** Calls a replica's mTLS port as the node whose certificate is `id`. */
function mtlsCall(
  replica: ServerProc,
  method: string,
  path: string,
  body: unknown,
  id: { cert: string; key: string },
  // deno-lint-ignore no-explicit-any -- answers of every shape; the test asserts on them
): Promise<{ status: number; body: any }> {
  const url = new URL(path, replica.tlsUrl);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      cert: id.cert,
      key: id.key,
      rejectUnauthorized: false,
      agent: false,
      headers: { "content-type": "application/json" },
    }, (res) => {
      let text = "";
      res.on("data", (chunk) => text += String(chunk));
      res.on(
        "end",
        () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : null }),
      );
    });
    req.on("error", reject);
    req.end(JSON.stringify(body ?? {}));
  });
}

Deno.test("e2e replicas CA: the leader counts a bundle a node fetched from a follower, so a rotation switches and, after the node renews there, completes", async () => {
  const url = await cluster.createDatabase();
  const work = await tempDir("ca-rotate-node");
  const replicas = await startTogether(url, 3);
  let beating = true;
  let beats: Promise<void> = Promise.resolve();
  try {
    const leader = await waitFor("a leader", () => leaderAmong(replicas));
    const follower = replicas.find((r) => r !== leader)!;
    // The node talks to the follower only: the leader never sees its fetches or heartbeats.
    const id = await enrol(follower, await follower.joinToken({ node: "vm-f" }), work, "vm-f");
    const registered = await mtlsCall(follower, "PUT", "/v1/nodes/vm-f/registration", {
      hostname: "vm-f",
      addresses: ["127.0.0.1"],
      agentVersion: "e2e",
      heartbeatInterval: "1s",
      instances: [],
    }, id);
    assert.equal(registered.status, 200, JSON.stringify(registered.body));
    beats = (async () => {
      while (beating) {
        const { bundleFingerprint } = (await follower.api("GET", "/v1/ca/roots")).body;
        const beat = await mtlsCall(follower, "POST", "/v1/nodes/vm-f/heartbeat", {
          bundleFingerprint,
        }, id);
        assert.equal(beat.status, 200, JSON.stringify(beat.body));
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    })();
    await waitFor(
      "the node to be live on the leader",
      async () => (await leader.api("GET", "/v1/nodes/vm-f")).body.status === "alive",
    );

    assert.equal((await follower.api("POST", "/v1/ca/rotation")).status, 202);
    await waitFor(
      "the leader to switch signing once the node holds the new bundle",
      async () => {
        const status = (await leader.api("GET", "/v1/ca/status")).body;
        if (status.stage !== "switched") throw new Error(JSON.stringify(status));
        return true;
      },
      10_000,
    );
    // The node renews on the follower onto the new root; nothing chains to the old one any more.
    const { csr } = await keyAndCsr(work, "vm-f");
    const renewed = await mtlsCall(follower, "POST", "/v1/ca/renew", { csr }, id);
    assert.equal(renewed.status, 200, JSON.stringify(renewed.body));
    await waitFor("every replica to end the rotation", async () => {
      const statuses = await Promise.all(replicas.map((r) => r.api("GET", "/v1/ca/status")));
      return statuses.every((s) => s.body.stage === "steady" && s.body.generations.length === 2);
    }, 10_000);
  } finally {
    beating = false;
    await beats.catch(() => {});
    await stopAll(replicas);
    await Deno.remove(work, { recursive: true });
  }
});
