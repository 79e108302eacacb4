import assert from "node:assert/strict";
import { join } from "node:path";
import { FakeClock } from "../core/clock.ts";
import { ConflictError, InvalidError } from "../core/errors.ts";
import { makeCsr, opensslOk, opensslVerify, tempDir } from "./_testing.ts";
import { CertificateAuthority } from "./authority.ts";
import { fingerprintOf } from "./ca_certificates.ts";
import { decodeCertificates } from "./pem.ts";

const TD = "example.org";
const DAY = 24 * 3_600_000;

const EXTENSIONS = `
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
`;

/** An operator's CA made with openssl: `<name>.key` and `<name>.pem` for each certificate. */
async function externalCa(dir: string): Promise<void> {
  await Deno.writeTextFile(join(dir, "ext.cnf"), EXTENSIONS);
  const run = (...args: string[]) => opensslOk(args, dir);
  const key = (name: string) =>
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`);
  const selfSigned = async (name: string, subject: string) => {
    await key(name);
    await run("req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`);
    await run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-signkey",
      `${name}.key`,
      "-days",
      "3650",
      "-extfile",
      "ext.cnf",
      "-extensions",
      "ca",
      "-out",
      `${name}.pem`,
    );
  };
  const signed = async (name: string, subject: string, issuer: string, profile = "ca") => {
    if (!name.startsWith("rsa")) await key(name);
    await run("req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`);
    await run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${issuer}.pem`,
      "-CAkey",
      `${issuer}.key`,
      "-set_serial",
      String(Math.floor(Math.random() * 1e9)),
      "-days",
      "365",
      "-extfile",
      "ext.cnf",
      "-extensions",
      profile,
      "-out",
      `${name}.pem`,
    );
  };
  await selfSigned("root", "/O=Ext/CN=Ext Root");
  await selfSigned("other", "/O=Other/CN=Other Root");
  await signed("int", "/O=Ext/CN=Ext Intermediate", "root");
  await signed("int2", "/O=Ext/CN=Ext Issuing", "int");
  await signed("leaf", "/CN=not-a-ca", "root", "leaf");
  await run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.key");
  await signed("rsa", "/O=Ext/CN=RSA Intermediate", "root");
  await run(
    "pkcs8",
    "-topk8",
    "-v2",
    "aes-256-cbc",
    "-in",
    "int.key",
    "-out",
    "int.enc.key",
    "-passout",
    "pass:imported",
  );
  const cat = async (out: string, ...files: string[]) => {
    const texts = await Promise.all(files.map((f) => Deno.readTextFile(join(dir, f))));
    await Deno.writeTextFile(join(dir, out), texts.join(""));
  };
  await cat("chain.pem", "int.pem", "root.pem");
  await cat("chain2.pem", "int2.pem", "int.pem", "root.pem");
}

let fixtures: Promise<string> | undefined;
/** The openssl fixtures are made once and shared (read-only) by every test here. */
function sharedFixtures(): Promise<string> {
  fixtures ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "ironmesh-ca-import-" });
    await externalCa(dir);
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return dir;
  })();
  return fixtures;
}

async function importInto(
  ext: string,
  files: { cert: string; key: string; chain: string },
  options: { clock?: FakeClock; passphrase?: string } = {},
) {
  const { dir, remove } = await tempDir();
  try {
    return await CertificateAuthority.open({
      dir,
      trustDomain: TD,
      clock: options.clock ?? new FakeClock(Date.now()),
      ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
      import: {
        certFile: join(ext, files.cert),
        keyFile: join(ext, files.key),
        chainFile: join(ext, files.chain),
      },
    });
  } finally {
    await remove();
  }
}

function refused(field: string, pattern: RegExp) {
  return (e: unknown) => {
    if (!(e instanceof InvalidError)) return false;
    const p = e.problems.find((p) => p.pointer === `/import/${field}`);
    assert.ok(p, `no problem at /import/${field}: ${JSON.stringify(e.problems)}`);
    assert.match(p.message, pattern);
    return true;
  };
}

Deno.test("open() with import adopts an operator's CA as generation 1", async () => {
  const ext = await sharedFixtures();
  const { dir, remove } = await tempDir();
  try {
    const clock = new FakeClock(Date.now());
    const files = {
      certFile: join(ext, "int.pem"),
      keyFile: join(ext, "int.key"),
      chainFile: join(ext, "chain.pem"),
    };
    const ca = await CertificateAuthority.open({ dir, trustDomain: TD, clock, import: files });
    const rootDer = decodeCertificates(await Deno.readTextFile(join(ext, "root.pem")))[0]!;
    assert.equal(ca.signingRootFingerprint, fingerprintOf(rootDer));
    assert.deepEqual(ca.status().map((g) => [g.id, g.stage, g.imported]), [[1, "active", true]]);
    assert.equal(ca.bundle().roots[0]!.subject, "O=Ext, CN=Ext Root");
    for (const f of ["root.crt", "intermediate.crt", "intermediate.key"]) {
      await Deno.stat(join(dir, "gen-1", f));
    }
    const leaf = await ca.issue({
      csrPem: await makeCsr(),
      node: "node-1",
      namespace: "default",
      serviceAccount: "web",
      ttlMs: 3_600_000,
    });
    const r = await opensslVerify(dir, {
      root: await Deno.readTextFile(join(ext, "root.pem")),
      chain: ca.chainPem(),
      leaf: leaf.certificatePem,
    });
    assert.equal(r.code, 0, r.stderr);

    await assert.rejects(
      () => ca.prepareNext(),
      (e) => e instanceof ConflictError && /was imported/.test(e.message),
    );
    // Later opens need no import; the same import is accepted, another one is not.
    const again = await CertificateAuthority.open({ dir, trustDomain: TD, clock });
    assert.equal(again.signingRootFingerprint, ca.signingRootFingerprint);
    await CertificateAuthority.open({ dir, trustDomain: TD, clock, import: files });
    await assert.rejects(
      () =>
        CertificateAuthority.open({
          dir,
          trustDomain: TD,
          clock,
          import: { ...files, certFile: join(ext, "int2.pem") },
        }),
      ConflictError,
    );
  } finally {
    await remove();
  }
});

Deno.test("open() with import accepts a chain without the signing certificate and longer chains", async () => {
  const ext = await sharedFixtures();
  const short = await importInto(ext, { cert: "int.pem", key: "int.key", chain: "root.pem" });
  assert.equal(short.bundle().roots.length, 1);
  const long = await importInto(ext, { cert: "int2.pem", key: "int2.key", chain: "chain2.pem" });
  // A leaf's chain carries both intermediates; the root stays out of it.
  assert.equal(decodeCertificates(long.chainPem()).length, 2);
  const { dir, remove } = await tempDir();
  try {
    const leaf = await long.issue({
      csrPem: await makeCsr(),
      node: "node-1",
      namespace: "default",
      serviceAccount: "web",
    });
    const r = await opensslVerify(dir, {
      root: await Deno.readTextFile(join(ext, "root.pem")),
      chain: long.chainPem(),
      leaf: leaf.certificatePem,
    });
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await remove();
  }
});

Deno.test("open() with import reads a key encrypted with the passphrase", async () => {
  const ext = await sharedFixtures();
  const ca = await importInto(
    ext,
    { cert: "int.pem", key: "int.enc.key", chain: "chain.pem" },
    { passphrase: "imported" },
  );
  assert.equal(ca.status()[0]!.imported, true);
  await assert.rejects(
    () => importInto(ext, { cert: "int.pem", key: "int.enc.key", chain: "chain.pem" }),
    refused("keyFile", /is encrypted: a passphrase is needed/),
  );
});

Deno.test("maintain() warns, and does not renew, when an imported intermediate nears expiry", async () => {
  const ext = await sharedFixtures();
  const clock = new FakeClock(Date.now());
  const ca = await importInto(ext, { cert: "int.pem", key: "int.key", chain: "chain.pem" }, {
    clock,
  });
  assert.equal((await ca.maintain()).warning, undefined);
  clock.advance(350 * DAY);
  const report = await ca.maintain();
  assert.equal(report.renewed, false);
  assert.match(report.warning ?? "", /^The imported signing CA expires at ".*": import a new one/);
});

Deno.test("open() with import refuses a key that does not match the certificate", async () => {
  const ext = await sharedFixtures();
  await assert.rejects(
    () => importInto(ext, { cert: "int.pem", key: "root.key", chain: "chain.pem" }),
    refused("keyFile", /root\.key": does not match the certificate in ".*int\.pem"/),
  );
});

Deno.test("open() with import refuses expired and not yet valid material", async () => {
  const ext = await sharedFixtures();
  await assert.rejects(
    () =>
      importInto(ext, { cert: "int.pem", key: "int.key", chain: "chain.pem" }, {
        clock: new FakeClock(Date.now() + 400 * DAY),
      }),
    refused("certFile", /"O=Ext, CN=Ext Intermediate" expired at /),
  );
  await assert.rejects(
    () =>
      importInto(ext, { cert: "int.pem", key: "int.key", chain: "chain.pem" }, {
        clock: new FakeClock(Date.now() - 2 * DAY),
      }),
    refused("chainFile", /"O=Ext, CN=Ext Root" is not valid before /),
  );
});

Deno.test("open() with import refuses a signing certificate that is not a CA", async () => {
  const ext = await sharedFixtures();
  await assert.rejects(
    () => importInto(ext, { cert: "leaf.pem", key: "leaf.key", chain: "root.pem" }),
    refused("certFile", /"CN=not-a-ca" is not a CA certificate with keyCertSign/),
  );
});

Deno.test("open() with import refuses a broken chain", async () => {
  const ext = await sharedFixtures();
  await assert.rejects(
    () => importInto(ext, { cert: "int.pem", key: "int.key", chain: "other.pem" }),
    refused(
      "chainFile",
      /the chain is broken: "O=Ext, CN=Ext Intermediate" is not signed by "O=Other, CN=Other Root"/,
    ),
  );
  await assert.rejects(
    () => importInto(ext, { cert: "int2.pem", key: "int2.key", chain: "int.pem" }),
    refused(
      "chainFile",
      /the last certificate, "O=Ext, CN=Ext Intermediate", is not a self-signed root/,
    ),
  );
});

Deno.test("open() with import refuses an RSA key", async () => {
  const ext = await sharedFixtures();
  await assert.rejects(
    () => importInto(ext, { cert: "rsa.pem", key: "rsa.key", chain: "root.pem" }),
    refused("keyFile", /Key algorithm "RSA 2048" is not allowed: use ECDSA P-256/),
  );
});

Deno.test("open() with import names unreadable and unparsable files", async () => {
  const ext = await sharedFixtures();
  await assert.rejects(
    () => importInto(ext, { cert: "missing.pem", key: "int.key", chain: "chain.pem" }),
    refused("certFile", /missing\.pem": cannot be read/),
  );
  await assert.rejects(
    () => importInto(ext, { cert: "ext.cnf", key: "int.key", chain: "chain.pem" }),
    refused("certFile", /ext\.cnf": holds no "CERTIFICATE" PEM block/),
  );
  await assert.rejects(
    () => importInto(ext, { cert: "int.pem", key: "int.key", chain: "int.key" }),
    refused("chainFile", /Expected "CERTIFICATE" blocks only, found "EC PRIVATE KEY"/),
  );
});
