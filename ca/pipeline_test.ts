import assert from "node:assert/strict";
import { join } from "node:path";
import { FakeClock } from "../core/clock.ts";
import { ForbiddenError, InvalidError, UnavailableError } from "../core/errors.ts";
import { makeCsr, opensslOk, opensslVerify, tempDir, testKeys } from "./_testing.ts";
import { CertificateAuthority } from "./authority.ts";
import { checkCsr } from "./csr.ts";
import { decodePem } from "./pem.ts";
import { CLOCK_SKEW_MS, enforceLimits, parseIp, serialHex, validateRequest } from "./pipeline.ts";
import { x509 } from "./x509.ts";

const TD = "example.org";
const ID = `spiffe://${TD}/ns/default/sa/web`;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function withCa(
  fn: (ca: CertificateAuthority, dir: string, clock: FakeClock) => Promise<void>,
) {
  const { dir, remove } = await tempDir();
  const clock = new FakeClock(Date.now());
  try {
    await fn(await CertificateAuthority.open({ dir, trustDomain: TD, clock }), dir, clock);
  } finally {
    await remove();
  }
}

const request = (csrPem: string, ttlMs = HOUR) => ({
  csrPem,
  node: "node-1",
  namespace: "default",
  serviceAccount: "web",
  ttlMs,
});

Deno.test("issue() signs a CSR into a leaf that openssl verifies, with the SPIFFE URI and CN", async () => {
  await withCa(async (ca, dir) => {
    const leaf = await ca.issue(request(await makeCsr({ subject: "CN=node-1", uris: [ID] })));
    assert.equal(leaf.identity, ID);
    assert.equal(leaf.root, ca.signingRootFingerprint);
    assert.equal(leaf.chainPem, leaf.certificatePem + ca.chainPem());
    const verified = await opensslVerify(dir, {
      root: ca.bundle().pem,
      chain: ca.chainPem(),
      leaf: leaf.certificatePem,
    });
    assert.equal(verified.code, 0, verified.stderr);
    await Deno.writeTextFile(join(dir, "leaf.pem"), leaf.certificatePem);
    const text = await opensslOk(["x509", "-in", "leaf.pem", "-noout", "-text"], dir);
    assert.match(text, /Subject: CN = node-1\n/);
    assert.match(text, /URI:spiffe:\/\/example\.org\/ns\/default\/sa\/web\n/);
    assert.match(text, /CA:FALSE/);
    assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
    const serial = await opensslOk(["x509", "-in", "leaf.pem", "-noout", "-serial"], dir);
    assert.equal(
      serial.trim().replace(/^serial=/, "").toLowerCase().replace(/^0+/, ""),
      leaf.serial,
    );
  });
});

Deno.test("issue() output has the same extensions as a certificate built by @peculiar/x509", async () => {
  await withCa(async (ca) => {
    const keys = await testKeys();
    const leaf = await ca.issue(request(await makeCsr({ keys })));
    const cert = new x509.X509Certificate(leaf.certificatePem);
    const intermediate = new x509.X509Certificate(ca.chainPem());
    assert.ok(await cert.verify({ publicKey: intermediate.publicKey, signatureOnly: true }));
    const reference = await x509.X509CertificateGenerator.create({
      serialNumber: cert.serialNumber,
      subject: "CN=node-1",
      issuer: intermediate.subjectName,
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      publicKey: keys.publicKey,
      signingKey: (await testKeys()).privateKey,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        new x509.AuthorityKeyIdentifierExtension(
          intermediate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
        ),
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: ID }]),
      ],
    });
    const raw = (c: x509.X509Certificate) => c.extensions.map((e) => new Uint8Array(e.rawData));
    assert.deepEqual(raw(cert), raw(reference));
    assert.equal(cert.subject, "CN=node-1");
    assert.equal(cert.issuer, intermediate.subject);
    assert.deepEqual(
      new Uint8Array(cert.publicKey.rawData),
      new Uint8Array(reference.publicKey.rawData),
    );
  });
});

Deno.test("issue() accepts a CSR that asks for nothing", async () => {
  await withCa(async (ca) => {
    const leaf = await ca.issue(request(await makeCsr()));
    const cert = new x509.X509Certificate(leaf.certificatePem);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
    assert.deepEqual(san.names.toJSON(), [{ type: "url", value: ID }]);
  });
});

Deno.test("issue() refuses a CSR for another identity, another trust domain or extra names", async () => {
  await withCa(async (ca) => {
    const cases: [Parameters<typeof makeCsr>[0], string][] = [
      [
        { uris: [`spiffe://${TD}/ns/default/sa/admin`] },
        `CSR asks for identity "spiffe://${TD}/ns/default/sa/admin": only "${ID}" may be issued here`,
      ],
      [
        { uris: ["spiffe://evil.org/ns/default/sa/web"] },
        `CSR asks for identity "spiffe://evil.org/ns/default/sa/web" in trust domain "evil.org": ` +
        `only "${ID}" may be issued here`,
      ],
      [
        { uris: [ID], dnsNames: ["bank.example.com"] },
        `CSR asks for DNS name "bank.example.com": only "${ID}" may be issued here`,
      ],
      [
        { ips: ["10.0.0.1"] },
        `CSR asks for IP address "10.0.0.1": only "${ID}" may be issued here`,
      ],
      [
        { uris: [ID, ID] },
        `CSR asks for 2 URI names: a SPIFFE certificate holds exactly one, "${ID}"`,
      ],
      [
        { subject: "CN=node-2" },
        `CSR asks for common name "node-2": only "node-1" may be issued here`,
      ],
      [
        { ca: true },
        `CSR asks for a CA certificate: only a workload certificate for "${ID}" may be issued`,
      ],
    ];
    for (const [options, message] of cases) {
      await assert.rejects(
        async () => ca.issue(request(await makeCsr(options))),
        (e) => e instanceof ForbiddenError && e.message === message,
        message,
      );
    }
  });
});

Deno.test("issue() refuses bad CSRs with InvalidError at /csr", async () => {
  await withCa(async (ca) => {
    for (const csrPem of ["garbage", await makeCsr({ keyType: "RSA" }), "x".repeat(9000)]) {
      await assert.rejects(
        () => ca.issue(request(csrPem)),
        (e) => e instanceof InvalidError && e.problems[0]?.pointer === "/csr",
      );
    }
  });
});

Deno.test("issue() refuses invalid node, namespace and service account names", async () => {
  await withCa(async (ca) => {
    const csrPem = await makeCsr();
    await assert.rejects(
      () => ca.issue({ ...request(csrPem), node: "Bad_Node" }),
      (e) => e instanceof InvalidError && e.problems[0]?.pointer === "/node",
    );
    await assert.rejects(
      () => ca.issue({ ...request(csrPem), namespace: "a/b" }),
      (e) => e instanceof InvalidError && e.problems[0]?.pointer === "/namespace",
    );
    await assert.rejects(
      () => ca.issue({ ...request(csrPem), serviceAccount: ".." }),
      (e) => e instanceof InvalidError && e.problems[0]?.pointer === "/serviceAccount",
    );
  });
});

Deno.test("issue() caps the lifetime at the maximum and backdates notBefore for skew", async () => {
  await withCa(async (ca, _dir, clock) => {
    const leaf = await ca.issue(request(await makeCsr(), 30 * DAY));
    const now = Math.floor(clock.now() / 1000) * 1000;
    assert.equal(Date.parse(leaf.notAfter), Math.floor((clock.now() + 7 * DAY) / 1000) * 1000);
    assert.equal(
      Date.parse(leaf.notBefore),
      Math.floor((clock.now() - CLOCK_SKEW_MS) / 1000) * 1000,
    );
    assert.ok(Date.parse(leaf.notBefore) <= now);
    const cert = new x509.X509Certificate(leaf.certificatePem);
    assert.equal(cert.notAfter.toISOString(), leaf.notAfter);
  });
});

Deno.test("enforceLimits() never goes beyond the signer's notAfter", () => {
  const now = Date.UTC(2026, 0, 1);
  const signer = { notBefore: now - DAY, notAfter: now + 2 * HOUR };
  const limits = { now, maxTtlMs: 7 * DAY };
  assert.equal(enforceLimits(DAY, signer, limits).notAfter, now + 2 * HOUR);
  assert.equal(enforceLimits(HOUR, signer, limits).notAfter, now + HOUR);
  assert.equal(
    enforceLimits(undefined, { ...signer, notAfter: now + 9 * DAY }, limits).notAfter,
    now + DAY,
  );
  // notBefore is not earlier than the signer's own notBefore.
  assert.equal(
    enforceLimits(HOUR, { ...signer, notBefore: now - 1000 }, limits).notBefore,
    now - 1000,
  );
  assert.throws(() => enforceLimits(0, signer, limits), InvalidError);
  assert.throws(() => enforceLimits(Number.NaN, signer, limits), InvalidError);
  assert.throws(
    () => enforceLimits(HOUR, { ...signer, notAfter: now - 1 }, limits),
    (e) => e instanceof UnavailableError && /The signing CA expired/.test(e.message),
  );
});

Deno.test("validateRequest() allows exactly the identity and node being issued", async () => {
  const csr = await checkCsr(await makeCsr({ subject: "CN=node-1", uris: [ID] }));
  validateRequest(csr, "node-1", ID);
  assert.throws(() => validateRequest(csr, "node-2", ID), ForbiddenError);
});

Deno.test("serialHex() is lower-case hex without leading zeros", () => {
  assert.equal(serialHex(new Uint8Array([0, 0x0a, 0xbc])), "abc");
  assert.equal(serialHex(new Uint8Array([0xff, 0])), "ff00");
});

Deno.test("parseIp() reads IPv4, IPv6 and IPv4-mapped IPv6", () => {
  assert.deepEqual(parseIp("127.0.0.1"), new Uint8Array([127, 0, 0, 1]));
  const loop = new Uint8Array(16);
  loop[15] = 1;
  assert.deepEqual(parseIp("::1"), loop);
  assert.deepEqual(
    parseIp("2001:db8::8:1"),
    new Uint8Array([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 1]),
  );
  assert.deepEqual(
    parseIp("::ffff:10.0.0.1"),
    new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]),
  );
  assert.equal(parseIp("300.1.1.1"), undefined);
  assert.equal(parseIp("host"), undefined);
});

Deno.test("issueServerCertificate() makes a key and a serverAuth certificate for DNS and IP names", async () => {
  await withCa(async (ca, dir) => {
    const server = await ca.issueServerCertificate({
      dnsNames: ["ironmesh.example.org", "localhost"],
      ipAddresses: ["127.0.0.1", "::1"],
      ttlMs: DAY,
    });
    assert.equal(decodePem(server.keyPem)[0]!.label, "PRIVATE KEY");
    const verified = await opensslVerify(dir, {
      root: ca.bundle().pem,
      chain: ca.chainPem(),
      leaf: server.certificatePem,
    });
    assert.equal(verified.code, 0, verified.stderr);
    await Deno.writeTextFile(join(dir, "server.pem"), server.certificatePem);
    const text = await opensslOk(["x509", "-in", "server.pem", "-noout", "-text"], dir);
    assert.match(text, /Subject: CN = ironmesh.example.org\n/);
    assert.match(
      text,
      /DNS:ironmesh.example.org, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1/,
    );
    assert.match(text, /Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
    await assert.rejects(
      () => ca.issueServerCertificate({ dnsNames: ["not a name"] }),
      (e) => e instanceof InvalidError && e.problems[0]?.pointer === "/dnsNames/0",
    );
    await assert.rejects(() => ca.issueServerCertificate({}), /At least one DNS name or IP/);
  });
});
