import assert from "node:assert/strict";
import { join } from "node:path";
import * as tls from "node:tls";
import { FakeClock } from "../core/clock.ts";
import { ConflictError, InvalidError } from "../core/errors.ts";
import { makeCsr, opensslOk, opensslVerify, tempDir, testKeys } from "./_testing.ts";
import { CertificateAuthority } from "./authority.ts";
import { encodePem } from "./pem.ts";
import { x509 } from "./x509.ts";

const TD = "example.org";
const DAY = 24 * 3_600_000;

async function inTemp(fn: (dir: string) => Promise<void>) {
  const { dir, remove } = await tempDir();
  try {
    await fn(dir);
  } finally {
    await remove();
  }
}

async function leafFor(ca: CertificateAuthority, node = "node-1") {
  return await ca.issue({
    csrPem: await makeCsr(),
    node,
    namespace: "default",
    serviceAccount: "web",
    ttlMs: 3_600_000,
  });
}

Deno.test("open() creates generation 1 on disk and later opens load it", async () => {
  await inTemp(async (dir) => {
    const clock = new FakeClock(Date.now());
    const ca = await CertificateAuthority.open({ dir, trustDomain: TD, clock });
    for (const f of ["root.crt", "root.key", "intermediate.crt", "intermediate.key"]) {
      const mode = (await Deno.stat(join(dir, "gen-1", f))).mode! & 0o777;
      assert.equal(mode, f.endsWith(".key") ? 0o600 : 0o644, f);
    }
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    const state = JSON.parse(await Deno.readTextFile(join(dir, "state.json")));
    assert.deepEqual(
      state.generations.map((g: { id: number; stage: string }) => [g.id, g.stage]),
      [[1, "active"]],
    );

    const rootText = await opensslOk(["x509", "-in", "gen-1/root.crt", "-noout", "-text"], dir);
    assert.match(rootText, /Subject: O = Ironmesh, CN = Ironmesh Root CA example.org 1\n/);
    assert.match(rootText, /Basic Constraints: critical\n\s+CA:TRUE\n/);
    assert.match(rootText, /Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
    assert.match(rootText, /Subject Key Identifier/);
    const interText = await opensslOk(
      ["x509", "-in", "gen-1/intermediate.crt", "-noout", "-text"],
      dir,
    );
    assert.match(interText, /CA:TRUE, pathlen:0/);
    assert.match(interText, /Authority Key Identifier/);
    const verified = await opensslOk(
      ["verify", "-CAfile", "gen-1/root.crt", "gen-1/intermediate.crt"],
      dir,
    );
    assert.match(verified, /OK/);
    const root = new x509.X509Certificate(await Deno.readTextFile(join(dir, "gen-1/root.crt")));
    assert.equal(root.notAfter.getTime() - root.notBefore.getTime(), 3650 * DAY + 60_000);

    const bundle = ca.bundle();
    assert.equal(bundle.roots.length, 1);
    assert.equal(bundle.roots[0]!.fingerprint, ca.signingRootFingerprint);
    assert.equal(bundle.roots[0]!.subject, "O=Ironmesh, CN=Ironmesh Root CA example.org 1");
    assert.match(ca.signingRootFingerprint, /^[0-9a-f]{64}$/);
    const fp = await opensslOk([
      "x509",
      "-in",
      "gen-1/root.crt",
      "-noout",
      "-fingerprint",
      "-sha256",
    ], dir);
    assert.equal(
      fp.trim().split("=")[1]!.replaceAll(":", "").toLowerCase(),
      ca.signingRootFingerprint,
    );

    const again = await CertificateAuthority.open({ dir, trustDomain: TD, clock });
    assert.equal(again.signingRootFingerprint, ca.signingRootFingerprint);
    assert.equal(again.chainPem(), ca.chainPem());
    assert.deepEqual(again.status(), ca.status());
    const leaf = await leafFor(again);
    const r = await opensslVerify(dir, {
      root: ca.bundle().pem,
      chain: ca.chainPem(),
      leaf: leaf.certificatePem,
    });
    assert.equal(r.code, 0, r.stderr);
  });
});

Deno.test("open() refuses another trust domain and a corrupt state file", async () => {
  await inTemp(async (dir) => {
    const clock = new FakeClock(Date.now());
    await CertificateAuthority.open({ dir, trustDomain: TD, clock });
    await assert.rejects(
      () => CertificateAuthority.open({ dir, trustDomain: "other.org", clock }),
      (e) =>
        e instanceof ConflictError &&
        /is for trust domain "example.org", not "other.org"/.test(e.message),
    );
    await assert.rejects(
      () => CertificateAuthority.open({ dir, trustDomain: "Not Valid", clock }),
      (e) => e instanceof InvalidError && e.problems[0]?.pointer === "/trustDomain",
    );
    await Deno.writeTextFile(join(dir, "state.json"), "{");
    await assert.rejects(
      () => CertificateAuthority.open({ dir, trustDomain: TD, clock }),
      (e) => e instanceof InvalidError && e.message.includes(`"${join(dir, "state.json")}"`),
    );
  });
});

Deno.test("open() with a passphrase keeps keys encrypted; a wrong one is a clear error", async () => {
  await inTemp(async (dir) => {
    const clock = new FakeClock(Date.now());
    const ca = await CertificateAuthority.open({
      dir,
      trustDomain: TD,
      clock,
      passphrase: "s3cret",
    });
    for (const f of ["root.key", "intermediate.key"]) {
      assert.match(await Deno.readTextFile(join(dir, "gen-1", f)), /BEGIN ENCRYPTED PRIVATE KEY/);
    }
    await opensslOk(
      ["pkey", "-in", "gen-1/intermediate.key", "-passin", "pass:s3cret", "-noout"],
      dir,
    );
    const again = await CertificateAuthority.open({
      dir,
      trustDomain: TD,
      clock,
      passphrase: "s3cret",
    });
    assert.equal(again.signingRootFingerprint, ca.signingRootFingerprint);
    await assert.rejects(
      () => CertificateAuthority.open({ dir, trustDomain: TD, clock, passphrase: "guess" }),
      (e) =>
        e instanceof InvalidError &&
        /^Cannot decrypt key ".*intermediate\.key": the passphrase is wrong$/.test(e.message),
    );
    await assert.rejects(
      () => CertificateAuthority.open({ dir, trustDomain: TD, clock }),
      (e) => e instanceof InvalidError && /is encrypted: a passphrase is needed/.test(e.message),
    );
  });
});

Deno.test("prepareNext(), activate() and retire() move roots through the bundle", async () => {
  await inTemp(async (dir) => {
    const clock = new FakeClock(Date.now());
    const ca = await CertificateAuthority.open({ dir, trustDomain: TD, clock });
    const gen1 = ca.signingRootFingerprint;
    const fp1 = ca.bundle().fingerprint;
    const oldRootPem = ca.bundle().pem;

    // Published: trusted by everyone, not yet signing.
    const prepared = await ca.prepareNext();
    assert.equal(prepared.id, 2);
    assert.equal(prepared.stage, "published");
    assert.deepEqual(ca.bundle().retired, []);
    assert.deepEqual(ca.bundle().roots.map((r) => r.generation), [1, 2]);
    assert.notEqual(ca.bundle().fingerprint, fp1);
    assert.equal(ca.signingRootFingerprint, gen1);
    assert.equal((await leafFor(ca)).root, gen1);
    await assert.rejects(() => ca.prepareNext(), /generation "2" is already prepared/);

    // Active: signs, the old root stays trusted.
    const fp2 = ca.bundle().fingerprint;
    await ca.activate(2);
    const gen2 = ca.signingRootFingerprint;
    assert.notEqual(gen2, gen1);
    assert.equal(ca.bundle().fingerprint, fp2);
    assert.deepEqual(ca.status().map((g) => g.stage), ["published", "active"]);
    const leaf = await leafFor(ca);
    assert.equal(leaf.root, gen2);
    const newRootPem = ca.bundle().roots[1]!.pem;
    const ok = await opensslVerify(dir, {
      root: newRootPem,
      chain: ca.chainPem(),
      leaf: leaf.certificatePem,
    });
    assert.equal(ok.code, 0, ok.stderr);
    const old = await opensslVerify(dir, {
      root: oldRootPem,
      chain: ca.chainPem(),
      leaf: leaf.certificatePem,
    });
    assert.notEqual(old.code, 0);
    assert.match(ca.chainPem(), /BEGIN CERTIFICATE/);
    assert.ok(new x509.X509Certificate(ca.chainPem()).subject.endsWith("example.org 2"));

    // Retired: gone from the bundle, for good.
    await assert.rejects(
      () => ca.retire(2),
      (e) => e instanceof ConflictError && /is active/.test(e.message),
    );
    await ca.retire(1);
    assert.deepEqual(ca.bundle().roots.map((r) => r.generation), [2]);
    assert.notEqual(ca.bundle().fingerprint, fp2);
    // Known as retired, so that a join token pinning it can be told from an interception.
    assert.deepEqual(ca.bundle().retired, [{ fingerprint: gen1, generation: 1 }]);
    await assert.rejects(() => ca.activate(1), /is retired/);

    const again = await CertificateAuthority.open({ dir, trustDomain: TD, clock });
    assert.deepEqual(again.status().map((g) => [g.id, g.stage]), [[1, "retired"], [2, "active"]]);
    assert.equal(again.signingRootFingerprint, gen2);
    assert.equal(again.bundle().fingerprint, ca.bundle().fingerprint);
  });
});

Deno.test("maintain() renews the intermediate from the same root when less than 30 days are left", async () => {
  await inTemp(async (dir) => {
    const clock = new FakeClock(Date.now());
    const ca = await CertificateAuthority.open({ dir, trustDomain: TD, clock });
    const firstChain = ca.chainPem();
    const firstNotAfter = ca.status()[0]!.intermediateNotAfter;
    clock.advance(300 * DAY);
    assert.equal((await ca.maintain()).renewed, false);
    clock.advance(40 * DAY);
    const report = await ca.maintain();
    assert.equal(report.renewed, true);
    assert.notEqual(ca.chainPem(), firstChain);
    assert.ok(Date.parse(report.intermediateNotAfter) > Date.parse(firstNotAfter));
    assert.equal(ca.status()[0]!.intermediateNotAfter, report.intermediateNotAfter);
    await Deno.stat(join(dir, "gen-1", "intermediate-2.crt"));
    await Deno.stat(join(dir, "gen-1", "intermediate-2.key"));
    await Deno.stat(join(dir, "gen-1", "intermediate.crt"));
    await assert.rejects(
      () => Deno.stat(join(dir, "gen-1", "intermediate.key")),
      Deno.errors.NotFound,
    );

    // A leaf now chains through the new intermediate to the unchanged root.
    const leaf = await leafFor(ca);
    const r = await opensslVerify(
      dir,
      { root: ca.bundle().pem, chain: ca.chainPem(), leaf: leaf.certificatePem },
      clock.now(),
    );
    assert.equal(r.code, 0, r.stderr);

    // Leaves never outlive the intermediate that signed them.
    assert.ok(Date.parse(leaf.notAfter) <= Date.parse(report.intermediateNotAfter));

    // A reopen loads the renewed intermediate; one due at open is renewed then.
    const again = await CertificateAuthority.open({ dir, trustDomain: TD, clock });
    assert.equal(again.chainPem(), ca.chainPem());
    clock.advance(350 * DAY);
    const later = await CertificateAuthority.open({ dir, trustDomain: TD, clock });
    assert.notEqual(later.chainPem(), ca.chainPem());
    await Deno.stat(join(dir, "gen-1", "intermediate-3.crt"));
  });
});

Deno.test("issued certificates work for mTLS through node:tls", async () => {
  await inTemp(async (dir) => {
    const ca = await CertificateAuthority.open({
      dir,
      trustDomain: TD,
      clock: new FakeClock(Date.now()),
    });
    const server = await ca.issueServerCertificate({
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
    });
    const keys = await testKeys();
    const leaf = await ca.issue({
      csrPem: await makeCsr({ keys }),
      node: "node-1",
      namespace: "default",
      serviceAccount: "web",
      ttlMs: 3_600_000,
    });
    const clientKey = encodePem(
      "PRIVATE KEY",
      new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey)),
    );
    const seen = Promise.withResolvers<string>();
    const srv = tls.createServer({
      key: server.keyPem,
      cert: server.chainPem,
      ca: ca.bundle().pem,
      requestCert: true,
      rejectUnauthorized: true,
    }, (socket) => {
      seen.resolve(socket.getPeerCertificate().subjectaltname ?? "");
      socket.end("ok");
    });
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    const port = (srv.address() as { port: number }).port;
    const answer = await new Promise<string>((resolve, reject) => {
      const client = tls.connect({
        host: "127.0.0.1",
        port,
        servername: "localhost",
        key: clientKey,
        cert: leaf.chainPem,
        ca: ca.bundle().pem,
      }, () => {});
      let data = "";
      client.on("data", (d) => data += d);
      client.on("end", () => resolve(data));
      client.on("error", reject);
    });
    assert.equal(answer, "ok");
    assert.equal(await seen.promise, "URI:spiffe://example.org/ns/default/sa/web");
    await new Promise((resolve) => srv.close(resolve));
  });
});
