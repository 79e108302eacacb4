import assert from "node:assert/strict";
import type { CertificateAuthority } from "../ca/authority.ts";
import { issueTestLeaf, openTestAuthority, type TestAuthority } from "../ca/_testing.ts";
import { type Identity, loadIdentity, saveIdentity } from "./identity.ts";
import { describeLeaf, parseCertificates } from "./pki.ts";

/** An identity as enrolment saves it, with a certificate of the real CA. */
async function makeIdentity(authority: CertificateAuthority): Promise<Identity> {
  const request = { node: "vm-1", namespace: "default", serviceAccount: "web" };
  const { keyPem, leaf } = await issueTestLeaf(authority, request);
  return {
    node: "vm-1",
    identity: "spiffe://ironmesh.test/ns/default/sa/web",
    server: "https://127.0.0.1:8443",
    keyPem,
    certPem: leaf.chainPem,
    bundlePem: authority.bundle().pem,
    bundleFingerprint: authority.bundle().fingerprint,
    leaf: describeLeaf(parseCertificates(leaf.chainPem, "cert")[0]!),
  };
}

/** Runs `fn` with a temporary directory and a real CA, then removes both. */
async function withDirAndCa(fn: (dir: string, ca: CertificateAuthority) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  let ca: TestAuthority | undefined;
  try {
    ca = await openTestAuthority("ironmesh.test");
    await fn(dir, ca.authority);
  } finally {
    await ca?.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadIdentity() reads back what saveIdentity() wrote", async () => {
  await withDirAndCa(async (dir, ca) => {
    assert.deepEqual(await loadIdentity(dir), { kind: "none" });
    const identity = await makeIdentity(ca);
    await saveIdentity(dir, identity);
    assert.deepEqual(await loadIdentity(dir), { kind: "ok", identity });
  });
});

Deno.test("loadIdentity() finishes a key and certificate swap cut between its renames", async () => {
  await withDirAndCa(async (dir, ca) => {
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
  });
});

Deno.test("loadIdentity() reports a key that does not belong to the certificate", async () => {
  await withDirAndCa(async (dir, ca) => {
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
  });
});
