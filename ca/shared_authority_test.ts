import assert from "node:assert/strict";
import { systemClock } from "../core/clock.ts";
import { sharedCluster } from "../store/_postgres_testing.ts";
import { openPostgresStore, type PostgresStore } from "../store/postgres.ts";
import { CertificateAuthority } from "./authority.ts";
import { JoinTokens } from "./join_tokens.ts";
import { StoreMaterial } from "./material.ts";

const cluster = await sharedCluster();

/** `n` stores on one new database, as `n` replicas would open them; closed by `fn`'s end. */
async function withReplicas(
  n: number,
  fn: (stores: PostgresStore[]) => Promise<void>,
): Promise<void> {
  const url = await cluster.createDatabase();
  const stores = await Promise.all(Array.from({ length: n }, () => openPostgresStore(url)));
  try {
    await fn(stores);
  } finally {
    for (const s of stores) await s.close();
  }
}

function openShared(store: PostgresStore, passphrase: string): Promise<CertificateAuthority> {
  return CertificateAuthority.open({
    dir: "/nonexistent",
    material: new StoreMaterial(store.caMaterial, "the test database"),
    trustDomain: "ironmesh.local",
    clock: systemClock,
    passphrase,
  });
}

Deno.test("CertificateAuthority.open() by replicas at once on one database makes one CA, keys encrypted", () =>
  withReplicas(3, async (stores) => {
    const cas = await Promise.all(stores.map((s) => openShared(s, "pass")));
    const fingerprints = new Set(cas.map((ca) => ca.bundle().fingerprint));
    assert.equal(fingerprints.size, 1, "every replica holds the same roots");
    assert.equal(new Set(cas.map((ca) => ca.chainPem())).size, 1, "and the same intermediate");
    for (const name of ["gen-1/root.key", "gen-1/intermediate.key"]) {
      const text = await stores[0]!.caMaterial.read(name);
      assert.match(text ?? "", /-----BEGIN ENCRYPTED PRIVATE KEY-----/, name);
    }
    // Written by one replica, logged for the others.
    const { entries } = await stores[0]!.log.read(0, 100);
    const names = entries.flatMap((e) =>
      e.changes.filter((c) => c.kind === "ca").map((c) => c.key)
    );
    assert.ok(names.includes("state.json"), names.join());
    assert.equal(
      new Set(entries.filter((e) => e.changes.some((c) => c.kind === "ca")).map((e) => e.origin))
        .size,
      1,
    );
  }));

Deno.test("CertificateAuthority.reload() takes in another replica's rotation; a wrong passphrase is refused", () =>
  withReplicas(2, async ([a, b]) => {
    const first = await openShared(a!, "pass");
    const second = await openShared(b!, "pass");
    await first.prepareNext();
    assert.equal(first.bundle().roots.length, 2);
    assert.equal(second.bundle().roots.length, 1, "nothing changes before the reload");
    await second.reload();
    assert.deepEqual(second.bundle(), first.bundle());
    // A mutation on the second first takes in what the first did: no second generation 2.
    await first.activate(2);
    await second.retire(1);
    await first.reload();
    assert.deepEqual(first.status().map((g) => [g.id, g.stage]), [[1, "retired"], [2, "active"]]);
    assert.equal(first.signingRootFingerprint, second.signingRootFingerprint);

    await assert.rejects(openShared(b!, "wrong"), /passphrase is wrong/);
  }));

Deno.test("JoinTokens.open() on the shared material makes one key, encrypted, that every replica loads", () =>
  withReplicas(2, async ([a, b]) => {
    const key = (store: PostgresStore, passphrase: string) => ({
      material: new StoreMaterial(store.caMaterial, "the test database"),
      name: "token-signing.key",
      passphrase,
    });
    const [ta, tb] = await Promise.all([
      JoinTokens.open(a!, systemClock, key(a!, "pass")),
      JoinTokens.open(b!, systemClock, key(b!, "pass")),
    ]);
    const created = await ta.create(
      {
        kind: "join",
        namespace: "default",
        serviceAccount: "web",
        uses: 1,
        ttl: 60_000,
        description: "",
      },
      { trustDomain: "ironmesh.local", servers: [], pin: `sha256:${"0".repeat(64)}` },
    );
    assert.equal((await tb.verify(created.token)).record.id, created.id);
    assert.match(
      (await a!.caMaterial.read("token-signing.key")) ?? "",
      /-----BEGIN ENCRYPTED PRIVATE KEY-----/,
    );
    await assert.rejects(
      JoinTokens.open(b!, systemClock, key(b!, "wrong")),
      /passphrase is wrong/,
    );
  }));
