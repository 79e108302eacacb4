import assert from "node:assert/strict";
import { decodeCertificates, decodePem, encodePem, PemError } from "./pem.ts";

Deno.test("encodePem() and decodePem() round-trip with 64-column lines", () => {
  const der = crypto.getRandomValues(new Uint8Array(100));
  const pem = encodePem("CERTIFICATE", der);
  assert.ok(pem.split("\n").every((l) => l.length <= 64));
  const blocks = decodePem("some text before\n" + pem + pem);
  assert.equal(blocks.length, 2);
  assert.equal(blocks[0]!.label, "CERTIFICATE");
  assert.deepEqual(blocks[0]!.der, der);
});

Deno.test("decodePem() refuses broken blocks", () => {
  assert.throws(() => decodePem("-----BEGIN A-----\nAAAA\n-----END B-----\n"), /ends with "END B"/);
  assert.throws(() => decodePem("-----BEGIN A-----\nA$AA\n-----END A-----\n"), /not valid base64/);
  assert.throws(() => decodePem("-----BEGIN A-----\nAAAA\n"), PemError);
  assert.deepEqual(decodePem("no pem here"), []);
});

Deno.test("decodeCertificates() accepts only CERTIFICATE blocks", () => {
  const pem = encodePem("CERTIFICATE", new Uint8Array([1])) +
    encodePem("PRIVATE KEY", new Uint8Array([2]));
  assert.throws(() => decodeCertificates(pem), /found "PRIVATE KEY"/);
});
