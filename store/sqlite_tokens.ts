/** API and join tokens in the SQLite store: the token as JSON, API tokens with their secret's hash. */
import { ConflictError } from "../core/errors.ts";
import type { Token } from "../core/model.ts";
import type { SqliteDb } from "./sqlite_db.ts";
import type { StoredToken } from "./store.ts";

/** Stores a new token; throws when the id is taken. */
export function createToken(db: SqliteDb, token: Token, secretHash: string): void {
  db.stmt("INSERT INTO tokens (id, secret_hash, created_at, data) VALUES (?, ?, ?, ?)").run(
    token.id,
    secretHash,
    token.createdAt,
    JSON.stringify(token),
  );
}

/** A token with its secret hash, or `null`. */
export function getToken(db: SqliteDb, id: string): StoredToken | null {
  const row = db.stmt("SELECT secret_hash, data FROM tokens WHERE id = ?").get(id) as
    | { secret_hash: string; data: string }
    | undefined;
  return row ? { token: JSON.parse(row.data) as Token, secretHash: row.secret_hash } : null;
}

/** All tokens, newest first. */
export function listTokens(db: SqliteDb): Token[] {
  const rows = db.stmt("SELECT data FROM tokens ORDER BY created_at DESC, id").all() as {
    data: string;
  }[];
  return rows.map((r) => JSON.parse(r.data) as Token);
}

/** Marks a token revoked (once: a second revocation keeps the first time). */
export function revokeToken(db: SqliteDb, id: string, at: string): Token | null {
  return db.transaction(() => {
    const row = db.stmt("SELECT data FROM tokens WHERE id = ?").get(id) as
      | { data: string }
      | undefined;
    if (!row) return null;
    const token = JSON.parse(row.data) as Token;
    if (token.revokedAt) return token;
    const revoked = { ...token, revokedAt: at };
    db.stmt("UPDATE tokens SET data = ? WHERE id = ?").run(JSON.stringify(revoked), id);
    return revoked;
  });
}

/**
 * Uses a join token once, inside the caller's transaction: the last check
 * against a replay, made where the use is recorded, so two enrolments racing
 * on one single-use token cannot both succeed.
 */
export function consumeJoinToken(db: SqliteDb, id: string, at: string): void {
  const row = db.stmt("SELECT data FROM tokens WHERE id = ?").get(id) as
    | { data: string }
    | undefined;
  const token = row ? JSON.parse(row.data) as Token : undefined;
  if (!token || token.kind !== "join") {
    throw new ConflictError(`Join token "${id}" does not exist`);
  }
  if (token.revokedAt) throw new ConflictError(`Join token "${id}" has been revoked`);
  if (token.expiresAt <= at) throw new ConflictError(`Join token "${id}" has expired`);
  if (token.used >= token.uses) {
    throw new ConflictError(
      `Join token "${id}" has been used up (${token.uses} of ${token.uses} uses)`,
    );
  }
  db.stmt("UPDATE tokens SET data = ? WHERE id = ?").run(
    JSON.stringify({ ...token, used: token.used + 1 }),
    id,
  );
}
