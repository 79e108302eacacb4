/**
 * Tokens in the PostgreSQL store: API tokens with the hash of their secret,
 * join tokens with their use count. A join token is used under its row lock,
 * so two replicas enrolling with the last use of one token cannot both
 * succeed.
 */
import type postgres from "postgres";
import { AlreadyExistsError, ConflictError } from "../core/errors.ts";
import type { Token } from "../core/model.ts";
import { isUniqueViolation } from "./postgres_errors.ts";
import type { Logged } from "./postgres_log.ts";
import type { StoredToken } from "./store.ts";

type Sql = postgres.Sql | postgres.TransactionSql;
type Tx = postgres.TransactionSql;

/** Stores a new token. */
export async function createToken(tx: Tx, token: Token, secretHash: string): Promise<Logged<void>> {
  try {
    await tx`
      INSERT INTO tokens (id, secret_hash, created_at, data)
      VALUES (${token.id}, ${secretHash}, ${token.createdAt}, ${JSON.stringify(token)})`;
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new AlreadyExistsError(`Token "${token.id}" already exists`);
    }
    throw error;
  }
  return { result: undefined, changes: [{ kind: "token", key: token.id }] };
}

/** A token with its secret hash, or `null`. */
export async function getToken(sql: Sql, id: string): Promise<StoredToken | null> {
  const [row] = await sql<{ secret_hash: string; data: string }[]>`
    SELECT secret_hash, data FROM tokens WHERE id = ${id}`;
  return row ? { token: JSON.parse(row.data) as Token, secretHash: row.secret_hash } : null;
}

/** All tokens, newest first. */
export async function listTokens(sql: Sql): Promise<Token[]> {
  const rows = await sql<{ data: string }[]>`
    SELECT data FROM tokens ORDER BY created_at DESC, id`;
  return rows.map((r) => JSON.parse(r.data) as Token);
}

/** Marks a token revoked (once); `null` when there is no such token. */
export async function revokeToken(tx: Tx, id: string, at: string): Promise<Logged<Token | null>> {
  const [row] = await tx<{ data: string }[]>`SELECT data FROM tokens WHERE id = ${id} FOR UPDATE`;
  if (!row) return { result: null, changes: [] };
  const token = JSON.parse(row.data) as Token;
  if (token.revokedAt) return { result: token, changes: [] };
  const revoked = { ...token, revokedAt: at };
  await tx`UPDATE tokens SET data = ${JSON.stringify(revoked)} WHERE id = ${id}`;
  return { result: revoked, changes: [{ kind: "token", key: id }] };
}

/** Uses a join token once, inside the caller's transaction; words its refusals as SQLite does. */
export async function consumeJoinToken(tx: Tx, id: string, at: string): Promise<void> {
  const [row] = await tx<{ data: string }[]>`SELECT data FROM tokens WHERE id = ${id} FOR UPDATE`;
  const token = row ? JSON.parse(row.data) as Token : undefined;
  if (!token || token.kind !== "join") throw new ConflictError(`Join token "${id}" does not exist`);
  if (token.revokedAt) throw new ConflictError(`Join token "${id}" has been revoked`);
  if (token.expiresAt <= at) throw new ConflictError(`Join token "${id}" has expired`);
  if (token.used >= token.uses) {
    throw new ConflictError(
      `Join token "${id}" has been used up (${token.uses} of ${token.uses} uses)`,
    );
  }
  await tx`UPDATE tokens SET data = ${
    JSON.stringify({ ...token, used: token.used + 1 })
  } WHERE id = ${id}`;
}
