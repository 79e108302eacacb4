import assert from "node:assert/strict";
import { FakeClock } from "../core/clock.ts";
import { ForbiddenError, InvalidError, UnavailableError } from "../core/errors.ts";
import { makeCsr, opensslVerify, tempDir } from "./_testing.ts";
import { CertificateAuthority } from "./authority.ts";
import { measureIssuance, measureRawSign } from "./measure.ts";

const TD = "example.org";

Deno.test("signingWorkers run the pipeline off-thread with the same results and errors", async () => {
  const { dir, remove } = await tempDir();
  const ca = await CertificateAuthority.open({
    dir,
    trustDomain: TD,
    clock: new FakeClock(Date.now()),
    signingWorkers: 2,
  });
  try {
    const csrPem = await makeCsr({ subject: "CN=node-1" });
    const request = { csrPem, node: "node-1", namespace: "default", serviceAccount: "web" };
    const leaves = await Promise.all(Array.from({ length: 10 }, () => ca.issue(request)));
    assert.equal(new Set(leaves.map((l) => l.serial)).size, 10);
    const r = await opensslVerify(dir, {
      root: ca.bundle().pem,
      chain: ca.chainPem(),
      leaf: leaves[0]!.certificatePem,
    });
    assert.equal(r.code, 0, r.stderr);

    await assert.rejects(
      () => ca.issue({ ...request, csrPem: "garbage" }),
      (e) => e instanceof InvalidError && e.problems[0]?.pointer === "/csr",
    );
    await assert.rejects(
      async () => ca.issue({ ...request, csrPem: await makeCsr({ dnsNames: ["x.example.org"] }) }),
      (e) => e instanceof ForbiddenError && /DNS name "x.example.org"/.test(e.message),
    );

    // Workers follow the signer when a new generation is activated.
    await ca.prepareNext();
    await ca.activate(2);
    assert.equal((await ca.issue(request)).root, ca.signingRootFingerprint);
  } finally {
    ca.close();
    await remove();
  }
  await assert.rejects(
    () => ca.issue({ csrPem: "", node: "n", namespace: "a", serviceAccount: "b" }),
    UnavailableError,
  );
});

Deno.test("measureIssuance() and measureRawSign() report rates", async () => {
  const { dir, remove } = await tempDir();
  try {
    const ca = await CertificateAuthority.open({
      dir,
      trustDomain: TD,
      clock: new FakeClock(Date.now()),
    });
    const issued = await measureIssuance(ca, { count: 20, csrs: 2, warmup: 2 });
    assert.equal(issued.count, 20);
    assert.ok(issued.perSecond > 0);
    assert.ok((await measureRawSign({ count: 20 })).perSecond > 0);
  } finally {
    await remove();
  }
});
