import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Clock } from "../core/clock.ts";
import { ForbiddenError, NotFoundError, UnauthorizedError } from "../core/errors.ts";
import type { ApiToken, ApiTokenCreate, Role, Token } from "../core/model.ts";
import type { Store } from "../store/store.ts";

/** Who is calling: the verified token's id, role and (for agents) node binding. */
export interface Principal {
  tokenId: string;
  role: Role;
  /** For agent tokens created with `--node`: the only node it may act on. */
  node: string | null;
}

/** A freshly created token: the record plus the secret, shown exactly once. */
export interface CreatedToken extends ApiToken {
  token: string;
}

const PREFIX = "imt";
const TOKEN_SHAPE = /^imt\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
/** A verified token in use is trusted from memory for this long after its last use… */
const CACHE_MS = 10_000;
/** …but the store is asked again at least this often, so a revocation elsewhere is seen. */
const CACHE_MAX_MS = 60_000;

/**
 * API tokens: opaque bearer secrets (`imt.<id>.<secret>`), stored only as a
 * SHA-256 hash of the secret. Verifying one is a map lookup plus one hash,
 * never a signature check, so token verification never bounds heartbeat
 * throughput (P-256 verifies at ~2,500/s per core here; this does millions).
 * Unlike a self-contained JWT, revoking one takes effect at once.
 */
export class TokenService {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #cache = new Map<
    string,
    { principal: Principal; expires: number; until: number; verifiedAt: number }
  >();

  constructor(store: Store, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  /** Creates a token and returns it with its secret. */
  async create(request: ApiTokenCreate): Promise<CreatedToken> {
    const id = randomBytes(8).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    const now = this.#clock.now();
    const record: ApiToken = {
      id,
      kind: "api",
      role: request.role,
      node: request.node ?? null,
      description: request.description,
      createdAt: new Date(now).toISOString(),
      expiresAt: request.ttl === undefined ? null : new Date(now + request.ttl).toISOString(),
      revokedAt: null,
    };
    await this.#store.createToken(record, hashSecret(secret));
    return { ...record, token: `${PREFIX}.${id}.${secret}` };
  }

  /** All tokens (API and join), without secrets. */
  list(): Promise<Token[]> {
    return this.#store.listTokens();
  }

  /** One token, without its secret. */
  async get(id: string): Promise<Token> {
    const stored = await this.#store.getToken(id);
    if (!stored) throw new NotFoundError(`Token "${id}" does not exist`);
    return stored.token;
  }

  /** Revokes a token (API or join); it stops working at once. */
  async revoke(id: string): Promise<Token> {
    const token = await this.#store.revokeToken(id, new Date(this.#clock.now()).toISOString());
    if (!token) throw new NotFoundError(`Token "${id}" does not exist`);
    this.forget(id);
    return token;
  }

  /** Drops what is cached about token `id` (another replica revoked it), so the next use re-reads it. */
  forget(id: string): void {
    for (const [key, entry] of this.#cache) {
      if (entry.principal.tokenId === id) this.#cache.delete(key);
    }
  }

  /**
   * Verifies a bearer token and returns its principal. Throws
   * `UnauthorizedError` for anything that is not a live token; the message
   * never echoes the secret.
   */
  async verify(bearer: string): Promise<Principal> {
    const now = this.#clock.now();
    const cached = this.#cache.get(bearer);
    if (cached && cached.until > now && cached.expires > now) {
      // Sliding while in use, so a busy agent's token is not re-read every 10 s.
      cached.until = Math.min(now + CACHE_MS, cached.verifiedAt + CACHE_MAX_MS);
      return cached.principal;
    }
    const match = TOKEN_SHAPE.exec(bearer);
    if (!match) throw new UnauthorizedError("Malformed token: expected imt.<id>.<secret>");
    const [, id, secret] = match as unknown as [string, string, string];
    const stored = await this.#store.getToken(id);
    if (!stored || !sameHash(stored.secretHash, hashSecret(secret))) {
      throw new UnauthorizedError("Unknown or invalid token");
    }
    const { token } = stored;
    if (token.kind !== "api") throw new UnauthorizedError("Unknown or invalid token");
    if (token.revokedAt) throw new UnauthorizedError(`Token "${id}" has been revoked`);
    const expires = token.expiresAt ? Date.parse(token.expiresAt) : Infinity;
    if (expires <= now) throw new UnauthorizedError(`Token "${id}" has expired`);
    const principal: Principal = { tokenId: token.id, role: token.role, node: token.node };
    this.#cache.set(bearer, { principal, expires, until: now + CACHE_MS, verifiedAt: now });
    return principal;
  }
}

function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

function sameHash(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/** What a caller wants to do, coarsely; the node-level checks live in the registry. */
export type Permission = "read" | "write" | "admin" | "agent";

const GRANTS: Record<Role, readonly Permission[]> = {
  admin: ["read", "write", "admin", "agent"],
  operator: ["read", "write", "agent"],
  viewer: ["read"],
  agent: ["read", "agent"],
};

/** The permissions `role` grants, e.g. for a client that hides what it may not do. */
export function permissionsOf(role: Role): readonly Permission[] {
  return GRANTS[role];
}

/** Throws `ForbiddenError` unless the principal's role grants `permission`. */
export function authorize(principal: Principal, permission: Permission): void {
  if (!GRANTS[principal.role].includes(permission)) {
    throw new ForbiddenError(
      `Role "${principal.role}" may not do this: it needs the "${permission}" permission`,
    );
  }
}
