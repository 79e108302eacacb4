import assert from "node:assert/strict";
import { createTestCa, type TestCa } from "./_tls_server_testing.ts";
import { type Identity, loadIdentity, saveIdentity } from "./identity.ts";
import { describeLeaf, generateKeyPair, parseCertificates, privateKeyPem } from "./pki.ts";

async function makeIdentity(ca: TestCa): Promise<Identity> {
  const keys = await generateKeyPair();
  const now = Math.floor(Date.now() / 1000) * 1000;
  const certPem = await ca.issue({
    publicKey: keys.publicKey,
    commonName: "vm-1",
    uris: ["spiffe://ironmesh.test/ns/default/sa/web"],
    notBefore: new Date(now),
    notAfter: new Date(now + 3_600_000),
    usage: "client",
  });
  return {
    node: "vm-1",
    identity: "spiffe://ironmesh.test/ns/default/sa/web",
    server: "https://127.0.0.1:8443",
    keyPem: await privateKeyPem(keys.privateKey),
    certPem,
    bundlePem: ca.rootPem,
    bundleFingerprint: "sha256:bundle",
    leaf: describeLeaf(parseCertificates(certPem, "cert")[0]!),
  };
}

Deno.test("loadIdentity() reads back what saveIdentity() wrote", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.deepEqual(await loadIdentity(dir), { kind: "none" });
    const identity = await makeIdentity(await createTestCa("Test"));
    await saveIdentity(dir, identity);
    assert.deepEqual(await loadIdentity(dir), { kind: "ok", identity });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadIdentity() finishes a key and certificate swap cut between its renames", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ca = await createTestCa("Test");
    const [old, renewed] = [await makeIdentity(ca), await makeIdentity(ca)];
    await saveIdentity(dir, old);
    // As if the agent died after renaming the new key into place but before the certificate.
    await Deno.writeTextFile(`${dir}/identity/key.pem`, renewed.keyPem);
    await Deno.writeTextFile(`${dir}/identity/cert.pem.next`, renewed.certPem);
    const loaded = await loadIdentity(dir);
    assert.equal(loaded.kind, "ok");
    assert.equal(loaded.kind === "ok" && loaded.identity.leaf.serial, renewed.leaf.serial);

    // A swap that never reached its commit mark is dropped.
    await Deno.writeTextFile(`${dir}/identity/key.pem.next`, old.keyPem);
    const again = await loadIdentity(dir);
    assert.equal(again.kind === "ok" && again.identity.leaf.serial, renewed.leaf.serial);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(`${dir}/identity`))).map((e) => e.name).sort(),
      ["bundle.pem", "cert.pem", "identity.json", "key.pem"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadIdentity() reports a key that does not belong to the certificate", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ca = await createTestCa("Test");
    await saveIdentity(dir, await makeIdentity(ca));
    await Deno.writeTextFile(`${dir}/identity/key.pem`, (await makeIdentity(ca)).keyPem);
    assert.deepEqual(await loadIdentity(dir), {
      kind: "broken",
      reason: `"${dir}/identity/key.pem" does not belong to "${dir}/identity/cert.pem"`,
    });
    await Deno.remove(`${dir}/identity/bundle.pem`);
    assert.deepEqual(await loadIdentity(dir), {
      kind: "broken",
      reason: `bundle.pem missing in "${dir}/identity"`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
