import assert from "node:assert/strict";
import { FakeClock } from "../core/clock.ts";
import {
  ConflictError,
  ForbiddenError,
  InvalidError,
  RateLimitedError,
  UnauthorizedError,
} from "../core/errors.ts";
import { silentLogger } from "../core/log.ts";
import type { JoinTokenCreate } from "../core/model.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import type { Store } from "../store/store.ts";
import { joinRequest, makeCsr, tempDir } from "./_testing.ts";
import { CertificateAuthority } from "./authority.ts";
import { type CertificatePrincipal, IdentityService } from "./identity.ts";
import { JoinTokens } from "./join_tokens.ts";

const TD = "test.local";
const WEB = `spiffe://${TD}/ns/default/sa/web`;

interface World {
  identity: IdentityService;
  authority: CertificateAuthority;
  store: Store;
  clock: FakeClock;
  alive: string[];
  dir: string;
  join(extra?: Partial<JoinTokenCreate>): Promise<string>;
  principal(
    issued: { node: string; identity: string; serial: string; notAfter: string },
    root?: string,
  ): CertificatePrincipal;
}

async function withWorld(
  fn: (w: World) => Promise<void>,
  options: { renewRate?: number; currentLeafTtlMs?: () => number | undefined } = {},
) {
  const { dir, remove } = await tempDir();
  const clock = new FakeClock(Date.now());
  const store = openSqliteStore(`${dir}/ironmesh.db`);
  const authority = await CertificateAuthority.open({ dir: `${dir}/ca`, trustDomain: TD, clock });
  const tokens = await JoinTokens.open(store, clock, `${dir}/token.key`);
  const world: World = {
    store,
    clock,
    authority,
    dir,
    alive: [],
    identity: undefined as unknown as IdentityService,
    async join(extra = {}) {
      const request = joinRequest(extra);
      return (await world.identity.createJoinToken(request, ["https://127.0.0.1:1"])).token;
    },
    principal(issued, root = authority.signingRootFingerprint) {
      return {
        node: issued.node,
        identity: issued.identity,
        serial: issued.serial,
        root,
        notAfter: issued.notAfter,
      };
    },
  };
  world.identity = new IdentityService(store, authority, tokens, {
    clock,
    log: silentLogger,
    leafTtlMs: 3_600_000,
    renewRatePerSecond: options.renewRate ?? 1000,
    renewBurst: options.renewRate ?? 1000,
    liveNodes: () => Promise.resolve(world.alive),
    ...(options.currentLeafTtlMs ? { currentLeafTtlMs: options.currentLeafTtlMs } : {}),
  });
  await world.identity.start();
  try {
    await fn(world);
  } finally {
    authority.close();
    await store.close();
    await remove();
  }
}

const csr = (node: string, uris: string[] = []) => makeCsr({ subject: `CN=${node}`, uris });

Deno.test("IdentityService.enrol() issues the identity the token allows, once", () =>
  withWorld(async (w) => {
    const token = await w.join();
    const issued = await w.identity.enrol({ token, csr: await csr("vm-1", [WEB]), node: "vm-1" });
    assert.equal(issued.identity, WEB);
    assert.equal(issued.node, "vm-1");
    assert.match(
      issued.certificate,
      /BEGIN CERTIFICATE[\s\S]+BEGIN CERTIFICATE/,
      "leaf and intermediate",
    );
    assert.equal(issued.bundle, w.authority.bundle().pem);
    const record = await w.store.getCertificate(issued.serial);
    assert.equal(record?.kind, "enrol");
    await assert.rejects(
      w.identity.enrol({ token, csr: await csr("vm-2"), node: "vm-2" }),
      ConflictError,
      "a replayed token is refused",
    );
    assert.equal((await w.store.listCertificates({})).length, 1);
  }));

Deno.test("IdentityService.enrol() refuses a replayed token at the token check, signing nothing", () =>
  withWorld(async (w) => {
    const refusals: string[] = [];
    w.identity.events.refused = (kind, reason) => refusals.push(`${kind}:${reason}`);
    let signed = 0;
    const issue = w.authority.issue.bind(w.authority);
    w.authority.issue = (request) => {
      signed++;
      return issue(request);
    };
    const token = await w.join();
    const first = await w.identity.enrol({ token, csr: await csr("vm-1"), node: "vm-1" });
    assert.equal(signed, 1);
    const { jti } = JSON.parse(
      atob(token.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/")),
    );
    await assert.rejects(
      w.identity.enrol({ token, csr: await csr("vm-2"), node: "vm-2" }),
      (e: unknown) =>
        e instanceof ConflictError &&
        e.message === `Join token "${jti}" has already been used (1 of 1): create a new one`,
    );
    assert.deepEqual(refusals, ["enrol:token"], "refused at the token check, not by the store");
    assert.equal(signed, 1, "no certificate was signed for the replay");
    assert.deepEqual((await w.store.listCertificates({})).map((c) => c.serial), [first.serial]);
  }));

Deno.test("IdentityService issues with the lifetime MeshConfig sets now, else the server's", () => {
  let meshTtl: number | undefined = 2 * 3_600_000;
  return withWorld(async (w) => {
    const lifetime = (issued: { notAfter: string }) => Date.parse(issued.notAfter) - w.clock.now();
    const first = await w.identity.enrol({
      token: await w.join(),
      csr: await csr("vm-1", [WEB]),
      node: "vm-1",
    });
    assert.ok(Math.abs(lifetime(first) - 2 * 3_600_000) < 5_000, `${lifetime(first)} ms`);
    meshTtl = undefined;
    const second = await w.identity.enrol({
      token: await w.join(),
      csr: await csr("vm-2", [WEB]),
      node: "vm-2",
    });
    assert.ok(Math.abs(lifetime(second) - 3_600_000) < 5_000, `${lifetime(second)} ms`);
  }, { currentLeafTtlMs: () => meshTtl });
});

Deno.test("IdentityService.enrol() refuses bad tokens and changes nothing", () =>
  withWorld(async (w) => {
    const expired = await w.join({ ttl: 1_000 });
    w.clock.advance(2_000);
    await assert.rejects(
      w.identity.enrol({ token: expired, csr: await csr("vm-1"), node: "vm-1" }),
      /expired/,
    );
    const good = await w.join();
    const [h, p, sig] = good.split(".");
    const forgedClaims = btoa(
      JSON.stringify({
        ...JSON.parse(atob(p!.replaceAll("-", "+").replaceAll("_", "/"))),
        sa: "admin",
      }),
    )
      .replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
    await assert.rejects(
      w.identity.enrol({
        token: `${h}.${forgedClaims}.${sig}`,
        csr: await csr("vm-1"),
        node: "vm-1",
      }),
      UnauthorizedError,
    );
    await assert.rejects(
      w.identity.enrol({ token: "not.a.jwt", csr: await csr("vm-1"), node: "vm-1" }),
      UnauthorizedError,
    );
    const pinned = await w.join({ node: "vm-7" });
    await assert.rejects(
      w.identity.enrol({ token: pinned, csr: await csr("vm-1"), node: "vm-1" }),
      ForbiddenError,
    );
    await assert.rejects(
      w.identity.enrol({
        token: good,
        csr: await csr("vm-1", [`spiffe://${TD}/ns/default/sa/admin`]),
        node: "vm-1",
      }),
      ForbiddenError,
      "a CSR asking for another identity",
    );
    await assert.rejects(
      w.identity.enrol({ token: good, csr: await makeCsr({ keyType: "RSA" }), node: "vm-1" }),
      InvalidError,
    );
    await assert.rejects(
      w.identity.enrol({ token: good, csr: await csr("vm-1"), node: "Bad_Name" }),
      InvalidError,
    );
    assert.deepEqual(await w.store.listCertificates({}), [], "nothing issued");
    await w.identity.enrol({ token: good, csr: await csr("vm-1"), node: "vm-1" });
  }));

Deno.test("IdentityService.enrol() will not let another token's holder take over a node", () =>
  withWorld(async (w) => {
    await w.identity.enrol({ token: await w.join(), csr: await csr("vm-1"), node: "vm-1" });
    await assert.rejects(
      w.identity.enrol({ token: await w.join(), csr: await csr("vm-1"), node: "vm-1" }),
      (e: unknown) => e instanceof ForbiddenError && /already enrolled/.test(e.message),
    );
    const named = await w.join({ node: "vm-1" });
    await w.identity.enrol({ token: named, csr: await csr("vm-1"), node: "vm-1" });
  }));

Deno.test("IdentityService.renew() reissues for the proven identity, within its rate limit", () =>
  withWorld(async (w) => {
    const first = await w.identity.enrol({
      token: await w.join(),
      csr: await csr("vm-1"),
      node: "vm-1",
    });
    const renewed = await w.identity.renew(w.principal(first), await csr("vm-1"));
    assert.notEqual(renewed.serial, first.serial);
    assert.equal(renewed.identity, WEB);
    assert.equal((await w.store.getCertificate(first.serial))?.supersededAt !== null, true);
    assert.equal(
      (await w.store.getCertificate(renewed.serial))?.tokenId,
      (await w.store.getCertificate(first.serial))?.tokenId,
    );
    await w.identity.renew(w.principal(renewed), await csr("vm-1"));
    await assert.rejects(
      w.identity.renew(w.principal(renewed), await csr("vm-1")),
      (e: unknown) => e instanceof RateLimitedError && e.retryAfterMs > 0,
    );
  }, { renewRate: 2 }));

Deno.test("IdentityService revocation reaches the token's whole lineage at once", () =>
  withWorld(async (w) => {
    const token = await w.join({ uses: 2 });
    const tokenId =
      JSON.parse(atob(token.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/"))).jti;
    const a = await w.identity.enrol({ token, csr: await csr("vm-1"), node: "vm-1" });
    const a2 = await w.identity.renew(w.principal(a), await csr("vm-1"));
    const b = await w.identity.enrol({
      token: await w.join(),
      csr: await csr("vm-2"),
      node: "vm-2",
    });
    const closed: string[][] = [];
    w.identity.events = { revoked: (nodes) => closed.push(nodes) };
    await w.identity.revokeToken(tokenId);
    assert.ok(w.identity.isRevoked(a.serial) && w.identity.isRevoked(a2.serial));
    assert.ok(!w.identity.isRevoked(b.serial));
    assert.deepEqual(closed, [["vm-1"]]);
    assert.throws(
      () =>
        w.identity.authenticate(true, null, {
          subject: { CN: "vm-1" },
          subjectaltname: `URI:${WEB}`,
          serialNumber: a2.serial.toUpperCase(),
        }),
      /revoked/,
    );
    await w.identity.decommission("vm-2");
    assert.ok(w.identity.isRevoked(b.serial));
  }));

Deno.test("IdentityService.authenticate() explains untrusted and expired certificates", () =>
  withWorld((w) => {
    assert.throws(
      () => w.identity.authenticate(false, "CERT_HAS_EXPIRED", {}),
      /expired.*re-enrol/,
    );
    assert.throws(
      () => w.identity.authenticate(false, "UNABLE_TO_GET_ISSUER_CERT", {}),
      /not trusted/,
    );
    assert.throws(
      () => w.identity.authenticate(true, null, { subject: { CN: "vm-1" } }),
      /no node name and SPIFFE ID/,
    );
    assert.throws(
      () =>
        w.identity.authenticate(true, null, {
          subject: { CN: "vm-1" },
          subjectaltname: "URI:spiffe://other.org/ns/default/sa/web",
        }),
      (e: unknown) =>
        e instanceof UnauthorizedError &&
        /identity "spiffe:\/\/other\.org\/ns\/default\/sa\/web" is of trust domain "other\.org", not this mesh's/
          .test(e.message),
    );
    const p = w.identity.authenticate(true, null, {
      subject: { CN: "vm-1" },
      subjectaltname: `URI:${WEB}`,
      serialNumber: "00AB",
      valid_to: "Jan  1 00:00:00 2030 GMT",
      fingerprint256: "AA:BB",
    });
    assert.deepEqual([p.node, p.identity, p.serial, p.root], ["vm-1", WEB, "ab", "aabb"]);
    return Promise.resolve();
  }));

Deno.test("IdentityService drives a root rotation through its stages", () =>
  withWorld(async (w) => {
    const first = await w.identity.enrol({
      token: await w.join(),
      csr: await csr("vm-1"),
      node: "vm-1",
    });
    const oldRoot = w.authority.signingRootFingerprint;
    w.alive = ["vm-1"];
    assert.equal(w.identity.rotationStage(), "steady");
    await w.identity.startRotation();
    await assert.rejects(w.identity.startRotation(), ConflictError);
    assert.equal(w.identity.rotationStage(), "published");
    assert.equal(w.authority.bundle().roots.length, 2, "both roots trusted");
    assert.equal(w.authority.signingRootFingerprint, oldRoot, "still signing with the old CA");
    assert.equal(
      await w.identity.advanceRotation(),
      "published",
      "waits for vm-1 to fetch the bundle",
    );
    assert.deepEqual((await w.identity.rotationStatus()).nodesAwaitingBundle, ["vm-1"]);
    w.identity.bundleFetched("vm-1", w.authority.bundle().fingerprint);
    assert.equal(await w.identity.advanceRotation(), "switched");
    assert.notEqual(w.authority.signingRootFingerprint, oldRoot);
    const principal = w.principal(first, oldRoot);
    assert.equal(w.identity.hints(principal).renew, true, "old-root leaves are asked to renew");
    assert.equal(await w.identity.advanceRotation(), "switched", "waits for the old-root leaf");
    assert.equal((await w.identity.rotationStatus()).leavesOnOtherRoots, 1);
    const renewed = await w.identity.renew(principal, await csr("vm-1"));
    assert.equal(
      (await w.store.getCertificate(renewed.serial))?.root,
      w.authority.signingRootFingerprint,
    );
    assert.equal(await w.identity.advanceRotation(), "steady");
    assert.deepEqual(w.authority.bundle().roots.map((r) => r.fingerprint), [
      w.authority.signingRootFingerprint,
    ]);
    assert.equal(w.identity.hints(w.principal(renewed)).renew, false);
  }));

Deno.test("IdentityService with shareBundleFetches counts a bundle a node fetched through another replica", () =>
  withWorld(async (w) => {
    await w.identity.enrol({ token: await w.join(), csr: await csr("vm-1"), node: "vm-1" });
    // Two replicas over one store and CA: the node talks to the follower only.
    const tokens = await JoinTokens.open(w.store, w.clock, `${w.dir}/token.key`);
    const replica = () =>
      new IdentityService(w.store, w.authority, tokens, {
        clock: w.clock,
        log: silentLogger,
        leafTtlMs: 3_600_000,
        liveNodes: () => Promise.resolve(["vm-1"]),
        shareBundleFetches: true,
      });
    const leader = replica();
    const follower = replica();
    await leader.startRotation();
    assert.equal(await leader.advanceRotation(), "published");
    follower.bundleFetched("vm-1", w.authority.bundle().fingerprint);
    // Recorded in the store in the background.
    for (let i = 0; i < 100 && !await w.store.getMeta("bundle-held:vm-1"); i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.deepEqual((await leader.rotationStatus()).nodesAwaitingBundle, []);
    assert.equal(await leader.advanceRotation(), "switched");
  }));
