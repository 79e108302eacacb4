import assert from "node:assert/strict";
import { InvalidError } from "../core/errors.ts";
import { makeCsr, opensslOk, tempDir } from "./_testing.ts";
import { checkCsr, formatIp } from "./csr.ts";
import { decodePem, encodePem } from "./pem.ts";
import { x509 } from "./x509.ts";

function refusedWith(pattern: RegExp) {
  return (e: unknown) =>
    e instanceof InvalidError && e.problems[0]?.pointer === "/csr" &&
    pattern.test(e.problems[0].message);
}

Deno.test("checkCsr() reads what @peculiar/x509 reads", async () => {
  const pem = await makeCsr({
    subject: "CN=node-1, O=acme",
    uris: ["spiffe://example.org/ns/a/sa/b"],
    dnsNames: ["web.example.org"],
    ips: ["10.1.2.3", "2001:db8::1"],
  });
  const csr = await checkCsr(pem);
  const ref = new x509.Pkcs10CertificateRequest(pem);
  assert.deepEqual(csr.spki, new Uint8Array(ref.publicKey.rawData));
  assert.deepEqual(csr.commonNames, ["node-1"]);
  assert.deepEqual(csr.names, [
    { type: "uri", value: "spiffe://example.org/ns/a/sa/b" },
    { type: "dns", value: "web.example.org" },
    { type: "ip", value: "10.1.2.3" },
    { type: "ip", value: "2001:db8::1" },
  ]);
  assert.equal(csr.wantsCa, false);
  assert.equal((await checkCsr(await makeCsr({ ca: true }))).wantsCa, true);
});

Deno.test("checkCsr() accepts a CSR made by openssl req", async () => {
  const { dir, remove } = await tempDir();
  try {
    await opensslOk(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "k.pem"], dir);
    const pem = await opensslOk([
      "req",
      "-new",
      "-key",
      "k.pem",
      "-subj",
      "/CN=vm-1",
      "-addext",
      "subjectAltName=URI:spiffe://example.org/ns/default/sa/web",
    ], dir);
    const csr = await checkCsr(pem);
    assert.deepEqual(csr.commonNames, ["vm-1"]);
    assert.deepEqual(csr.names, [{ type: "uri", value: "spiffe://example.org/ns/default/sa/web" }]);
  } finally {
    await remove();
  }
});

Deno.test("checkCsr() refuses garbage, empty and oversized input", async () => {
  await assert.rejects(() => checkCsr(""), refusedWith(/CSR is empty/));
  await assert.rejects(
    () => checkCsr("hello world"),
    refusedWith(/Expected exactly one "CERTIFICATE REQUEST" PEM block, found 0/),
  );
  await assert.rejects(
    () =>
      checkCsr("-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"),
    refusedWith(/not valid base64/),
  );
  await assert.rejects(
    () => checkCsr(encodePem("CERTIFICATE REQUEST", new Uint8Array([0x30, 0x03, 1, 2, 3]))),
    refusedWith(/CSR is not a valid PKCS#10 request/),
  );
  const big = await makeCsr() + "x".repeat(8 * 1024);
  await assert.rejects(
    () => checkCsr(big),
    refusedWith(/CSR is too large: \d+ bytes, at most 8192/),
  );
});

Deno.test("checkCsr() refuses two PEM blocks and other labels", async () => {
  const one = await makeCsr();
  await assert.rejects(
    () => checkCsr(one + one),
    refusedWith(/Expected exactly one "CERTIFICATE REQUEST" PEM block, found 2/),
  );
  const der = decodePem(one)[0]!.der;
  await assert.rejects(
    () => checkCsr(encodePem("CERTIFICATE", der)),
    refusedWith(/Expected a "CERTIFICATE REQUEST" PEM block, found "CERTIFICATE"/),
  );
});

Deno.test("checkCsr() refuses a tampered CSR: the signature does not verify", async () => {
  const pem = await makeCsr({ subject: "CN=node-1" });
  const der = decodePem(pem)[0]!.der;
  // "node-1" -> "node-2" inside the signed part.
  const at = new TextDecoder("latin1").decode(der).indexOf("node-1");
  der[at + 5] = "2".charCodeAt(0);
  await assert.rejects(
    () => checkCsr(encodePem("CERTIFICATE REQUEST", der)),
    refusedWith(/CSR signature does not verify/),
  );
});

Deno.test("checkCsr() refuses RSA and P-384 keys, naming the algorithm", async () => {
  await assert.rejects(
    async () => checkCsr(await makeCsr({ keyType: "RSA" })),
    refusedWith(/^Key algorithm "RSA 2048" is not allowed: use ECDSA P-256$/),
  );
  await assert.rejects(
    async () => checkCsr(await makeCsr({ keyType: "P-384" })),
    refusedWith(/^Key algorithm "ECDSA P-384" is not allowed: use ECDSA P-256$/),
  );
});

Deno.test("formatIp() writes IPv4 and IPv6", () => {
  assert.equal(formatIp(new Uint8Array([127, 0, 0, 1])), "127.0.0.1");
  const v6 = new Uint8Array(16);
  v6[15] = 1;
  assert.equal(formatIp(v6), "::1");
});
