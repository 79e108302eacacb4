import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import { InvalidError, NotFoundError } from "../core/errors.ts";
import { openssl, tempDir } from "./_testing.ts";
import { FileKeyBackend, parsePrivateKeyPem } from "./keys.ts";

const SIGN = { name: "ECDSA", hash: "SHA-256" };

async function signsAndVerifies(key: { privateKey: CryptoKey; publicKey: CryptoKey }) {
  const data = new TextEncoder().encode("hello");
  const sig = await crypto.subtle.sign(SIGN, key.privateKey, data);
  return await crypto.subtle.verify(SIGN, key.publicKey, sig, data);
}

Deno.test("FileKeyBackend.generate() writes a 0600 PKCS#8 file in 0700 dirs that openssl reads", async () => {
  const { dir, remove } = await tempDir();
  try {
    const backend = new FileKeyBackend(join(dir, "keys"));
    const key = await backend.generate("gen-1/root");
    const path = join(dir, "keys", "gen-1", "root.key");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(join(dir, "keys", "gen-1"))).mode! & 0o777, 0o700);
    assert.match(await Deno.readTextFile(path), /^-----BEGIN PRIVATE KEY-----\n/);
    const r = await openssl(["pkey", "-in", path, "-noout", "-text"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /NIST CURVE: P-256/);
    assert.equal(key.privateKey.extractable, false);
    const loaded = await backend.load("gen-1/root");
    assert.deepEqual(loaded.spki, key.spki);
    assert.ok(await signsAndVerifies({ privateKey: loaded.privateKey, publicKey: key.publicKey }));
    // No temporary files are left behind.
    assert.deepEqual([...Deno.readDirSync(join(dir, "keys", "gen-1"))].map((e) => e.name), [
      "root.key",
    ]);
  } finally {
    await remove();
  }
});

Deno.test("FileKeyBackend with a passphrase stores keys encrypted, readable by openssl", async () => {
  const { dir, remove } = await tempDir();
  try {
    const backend = new FileKeyBackend(dir, { passphrase: "correct horse" });
    const key = await backend.generate("ca");
    const path = join(dir, "ca.key");
    const text = await Deno.readTextFile(path);
    assert.match(text, /^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
    const r = await openssl(["pkey", "-in", path, "-passin", "pass:correct horse", "-noout"]);
    assert.equal(r.code, 0, r.stderr);
    const asn1 = await openssl(["asn1parse", "-in", path]);
    assert.match(asn1.stdout, /PBES2/);
    assert.match(asn1.stdout, /aes-256-cbc/);
    const loaded = await backend.load("ca");
    assert.deepEqual(loaded.spki, key.spki);
    assert.ok(await signsAndVerifies({ privateKey: loaded.privateKey, publicKey: key.publicKey }));
  } finally {
    await remove();
  }
});

Deno.test("FileKeyBackend.load() with a wrong or missing passphrase gives a clear InvalidError", async () => {
  const { dir, remove } = await tempDir();
  try {
    await new FileKeyBackend(dir, { passphrase: "right" }).generate("ca");
    const path = join(dir, "ca.key");
    await assert.rejects(
      () => new FileKeyBackend(dir, { passphrase: "wrong" }).load("ca"),
      (e) =>
        e instanceof InvalidError &&
        e.message === `Cannot decrypt key "${path}": the passphrase is wrong`,
    );
    await assert.rejects(
      () => new FileKeyBackend(dir).load("ca"),
      (e) =>
        e instanceof InvalidError &&
        e.message === `Key "${path}" is encrypted: a passphrase is needed to read it`,
    );
  } finally {
    await remove();
  }
});

Deno.test("FileKeyBackend refuses missing keys, bad names and non-P-256 keys", async () => {
  const { dir, remove } = await tempDir();
  try {
    const backend = new FileKeyBackend(dir);
    await assert.rejects(() => backend.load("nope"), NotFoundError);
    await backend.generate("gone");
    await backend.remove("gone");
    await backend.remove("gone");
    await assert.rejects(() => backend.load("gone"), NotFoundError);
    await assert.rejects(() => backend.load("../escape"), /is not valid/);
    await assert.rejects(() => backend.load("a/../../b"), /is not valid/);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const der = new Uint8Array(rsa.export({ type: "pkcs8", format: "der" }));
    await assert.rejects(
      () => backend.store("rsa", der),
      (e) =>
        e instanceof InvalidError &&
        e.problems[0]?.message === `Key algorithm "RSA 2048" is not allowed: use ECDSA P-256`,
    );
  } finally {
    await remove();
  }
});

Deno.test("parsePrivateKeyPem() reads SEC 1 keys from openssl ecparam", async () => {
  const { dir, remove } = await tempDir();
  try {
    const path = join(dir, "ec.key");
    const r = await openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path]);
    assert.equal(r.code, 0, r.stderr);
    const key = parsePrivateKeyPem(await Deno.readTextFile(path), { source: path });
    assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
    const p384 = join(dir, "p384.key");
    await openssl(["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", p384]);
    assert.throws(
      () => parsePrivateKeyPem(Deno.readTextFileSync(p384), { source: p384 }),
      /Key algorithm "ECDSA P-384" is not allowed: use ECDSA P-256/,
    );
    assert.throws(
      () => parsePrivateKeyPem("hello", { source: "x.pem" }),
      /Key "x.pem" is not a PEM private key/,
    );
  } finally {
    await remove();
  }
});
