import assert from "node:assert/strict";
import { FakeClock } from "../core/clock.ts";
import { ConflictError, UnauthorizedError } from "../core/errors.ts";
import { decodeJoinToken } from "../core/join_token.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import { sampleCertificate } from "../store/_testing.ts";
import { joinRequest, tempDir } from "./_testing.ts";
import { JoinTokens } from "./join_tokens.ts";
import { DirectoryMaterial } from "./material.ts";

const REQUEST = joinRequest();
const CONTEXT = {
  trustDomain: "test.local",
  servers: ["https://127.0.0.1:8443"],
  pin: `sha256:${"ab".repeat(32)}`,
};

async function withTokens(
  fn: (
    tokens: JoinTokens,
    world: { store: ReturnType<typeof openSqliteStore>; clock: FakeClock; dir: string },
  ) => Promise<void>,
) {
  const { dir, remove } = await tempDir();
  const clock = new FakeClock(Date.now());
  const store = openSqliteStore(`${dir}/ironmesh.db`);
  try {
    await fn(await JoinTokens.open(store, clock, `${dir}/token.key`), { store, clock, dir });
  } finally {
    await store.close();
    await remove();
  }
}

Deno.test("JoinTokens.create() signs the claims the agent decodes", () =>
  withTokens(async (tokens, { clock }) => {
    const created = await tokens.create({ ...REQUEST, node: "vm-1" }, CONTEXT);
    const decoded = decodeJoinToken(created.token, clock);
    assert.deepEqual(decoded, {
      jti: created.id,
      iat: Math.floor(clock.now() / 1000),
      exp: Math.floor((clock.now() + REQUEST.ttl) / 1000),
      td: "test.local",
      ns: "default",
      sa: "web",
      node: "vm-1",
      srv: CONTEXT.servers,
      pin: CONTEXT.pin,
    });
    const verified = await tokens.verify(created.token);
    assert.deepEqual(verified.claims, decoded, "the server reads the claims the agent reads");
    assert.equal(verified.record.id, created.id);
  }));

Deno.test("JoinTokens.verify() refuses a used-up token on its own, before the store's check", () =>
  withTokens(async (tokens, { store, clock }) => {
    const created = await tokens.create(REQUEST, CONTEXT);
    await store.recordIssuance(sampleCertificate("01", "vm-1", { tokenId: created.id }), {
      tokenId: created.id,
      at: new Date(clock.now()).toISOString(),
    });
    await assert.rejects(
      tokens.verify(created.token),
      (e: unknown) =>
        e instanceof ConflictError &&
        e.message ===
          `Join token "${created.id}" has already been used (1 of 1): create a new one`,
    );
  }));

Deno.test("JoinTokens.verify() refuses revoked, unknown and expired tokens", () =>
  withTokens(async (tokens, { store, clock, dir }) => {
    const revoked = await tokens.create(REQUEST, CONTEXT);
    await store.revokeToken(revoked.id, new Date(clock.now()).toISOString());
    await assert.rejects(
      tokens.verify(revoked.token),
      (e: unknown) =>
        e instanceof UnauthorizedError &&
        e.message === `Join token "${revoked.id}" has been revoked`,
    );
    // Signed with the same key but unknown to another server's store.
    const other = openSqliteStore(`${dir}/other.db`);
    try {
      const stranger = await JoinTokens.open(other, clock, `${dir}/token.key`);
      await assert.rejects(
        stranger.verify(revoked.token),
        (e: unknown) =>
          e instanceof UnauthorizedError &&
          e.message === `Join token "${revoked.id}" is not known to this server`,
      );
    } finally {
      await other.close();
    }
    const short = await tokens.create({ ...REQUEST, ttl: 1_000 }, CONTEXT);
    clock.advance(2_000);
    await assert.rejects(tokens.verify(short.token), /Join token has expired/);
  }));

Deno.test("JoinTokens.open() keeps its signing key across restarts, mode 0600", () =>
  withTokens(async (tokens, { store, clock, dir }) => {
    const created = await tokens.create(REQUEST, CONTEXT);
    assert.equal((await Deno.stat(`${dir}/token.key`)).mode! & 0o777, 0o600);
    const reopened = await JoinTokens.open(store, clock, `${dir}/token.key`);
    assert.equal((await reopened.verify(created.token)).record.id, created.id);
  }));

Deno.test("JoinTokens.open() with encryptNew false keeps a new key plain, yet reads an encrypted one with the passphrase", () =>
  withTokens(async (_tokens, { store, clock, dir }) => {
    const material = new DirectoryMaterial(dir);
    const plain = { material, name: "plain.key", passphrase: "pass", encryptNew: false };
    await JoinTokens.open(store, clock, plain);
    assert.match(await Deno.readTextFile(`${dir}/plain.key`), /-----BEGIN PRIVATE KEY-----/);
    // A key encrypted elsewhere (a database's, moved by ironmesh migrate) is read.
    const encrypted = await JoinTokens.open(store, clock, {
      material,
      name: "moved.key",
      passphrase: "pass",
    });
    assert.match(await Deno.readTextFile(`${dir}/moved.key`), /ENCRYPTED PRIVATE KEY/);
    const created = await encrypted.create(REQUEST, CONTEXT);
    const reopened = await JoinTokens.open(store, clock, { ...plain, name: "moved.key" });
    assert.equal((await reopened.verify(created.token)).record.id, created.id);
    await assert.rejects(
      JoinTokens.open(store, clock, { ...plain, name: "moved.key", passphrase: undefined }),
      /is encrypted: a passphrase is needed/,
    );
  }));
