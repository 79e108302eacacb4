import assert from "node:assert/strict";
import {
  children,
  DerError,
  ecdsaDerToRaw,
  ecdsaRawToDer,
  oid,
  readOid,
  readRoot,
  readTlv,
  sequence,
  smallInteger,
  time,
  unsignedInteger,
} from "./der.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("oid() encodes and readOid() reads multi-byte arcs", () => {
  const bytes = oid("1.2.840.10045.4.3.2");
  assert.equal(hex(bytes), "06082a8648ce3d040302");
  assert.equal(readOid(bytes, readRoot(bytes)), "1.2.840.10045.4.3.2");
  assert.equal(readOid(oid("2.5.29.17"), readRoot(oid("2.5.29.17"))), "2.5.29.17");
});

Deno.test("unsignedInteger() adds a sign byte and drops leading zeros", () => {
  assert.equal(hex(unsignedInteger(new Uint8Array([0x80, 1]))), "0203008001");
  assert.equal(hex(unsignedInteger(new Uint8Array([0, 0, 0x7f]))), "02017f");
  assert.equal(hex(smallInteger(2)), "020102");
  assert.equal(hex(smallInteger(0)), "020100");
});

Deno.test("time() uses UTCTime before 2050 and GeneralizedTime from 2050", () => {
  assert.equal(
    new TextDecoder().decode(time(Date.UTC(2026, 0, 2, 3, 4, 5, 999)).subarray(2)),
    "260102030405Z",
  );
  const late = time(Date.UTC(2051, 11, 31, 23, 59, 59));
  assert.equal(late[0], 0x18);
  assert.equal(new TextDecoder().decode(late.subarray(2)), "20511231235959Z");
});

Deno.test("readTlv() refuses what DER forbids", () => {
  assert.throws(() => readRoot(new Uint8Array([0x30, 0x80, 0, 0])), /Indefinite/);
  assert.throws(() => readRoot(new Uint8Array([0x04, 0x81, 0x01, 0])), /not minimal/);
  assert.throws(() => readRoot(new Uint8Array([0x04, 0x01, 0, 0])), /Trailing bytes/);
  assert.throws(() => readTlv(new Uint8Array([0x04, 0x05, 0]), 0), DerError);
  // A child that runs past its parent.
  const bad = new Uint8Array([0x30, 0x02, 0x04, 0x05]);
  assert.throws(() => children(bad, readRoot(bad)), /runs past its parent/);
});

Deno.test("long lengths round-trip through the writer and the reader", () => {
  const big = sequence(new Uint8Array(300).fill(0x05));
  const t = readRoot(big);
  assert.equal(t.end - t.contentStart, 300);
  assert.equal(hex(big.subarray(0, 4)), "3082012c");
});

Deno.test("ecdsaRawToDer() and ecdsaDerToRaw() are inverse", async () => {
  const keys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign", "verify"],
  );
  for (let i = 0; i < 20; i++) {
    const raw = new Uint8Array(
      await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        keys.privateKey,
        new Uint8Array([i]),
      ),
    );
    assert.deepEqual(ecdsaDerToRaw(ecdsaRawToDer(raw), 32), raw);
  }
  const small = new Uint8Array(64);
  small[31] = 1;
  small[63] = 0x80;
  assert.equal(hex(ecdsaRawToDer(small)), "3007020101020200" + "80");
});
