/**
 * The PostgreSQL store, for several server replicas sharing one database:
 * `ironmesh server --store postgres://USER@HOST:PORT/DB`.
 *
 * The driver is postgres.js (`npm:postgres`), chosen over node-postgres
 * (`pg`), the other well-kept one. Both bundle into the single-file release
 * and run from it (tried here), but postgres.js is one package of ES modules
 * without dependencies (~70 KB bundled, against ~180 KB of CommonJS from
 * five packages for `pg`), its queries are tagged templates, so every value
 * is a bound parameter, `sql.begin()` rolls back on any throw, and it
 * pipelines the statements of a transaction. Speed did not decide it:
 * measured here on one loopback PostgreSQL 15 under Deno (machine shared and
 * noisy), a one-row round trip takes ~0.2-0.3 ms with either, a transaction
 * of 1,000 rows ~47 ms with either as one `unnest` INSERT and ~0.3 s as
 * 1,000 pipelined INSERTs, so writes here are set-wise statements, not a
 * statement per row. LISTEN/NOTIFY runs on a connection of our own
 * (`postgres_log.ts`).
 *
 * Every failure of PostgreSQL or of the connection to it surfaces as
 * `StorageUnavailableError` saying what we tried and what went wrong
 * (`postgres_errors.ts`); nothing here retries a write whose outcome is
 * unknown, except a transaction PostgreSQL itself aborted as a deadlock or
 * serialization victim, which did nothing and is run again.
 *
 * One file per domain, as the SQLite store: `postgres_objects.ts`
 * (registry objects), `postgres_tokens.ts`, `postgres_certificates.ts`,
 * `postgres_policies.ts` (policies, history, audit), `postgres_meta.ts`
 * (schema, migrator, advisory locks, settings), `postgres_leases.ts`
 * (which replica leads), plus `postgres_log.ts` (the
 * revision log), `postgres_snapshot.ts` (a copy as a SQLite file) and
 * `postgres_errors.ts`, with `postgres_stray_errors.ts` for the connection
 * errors the driver can no longer report.
 */
import postgres from "postgres";
import { UnavailableError } from "../core/errors.ts";
import type { CertificateRecord, Token } from "../core/model.ts";
import type { AnyPolicy, PolicyKind } from "../core/policy/model.ts";
import { describeTarget, isRetryable, storeError } from "./postgres_errors.ts";
import * as certificates from "./postgres_certificates.ts";
import { appendLog, type Logged, logHead, LogListener, pruneLog, readLog } from "./postgres_log.ts";
import { acquireLease, releaseLease } from "./postgres_leases.ts";
import { dropStrayConnectErrors } from "./postgres_stray_errors.ts";
import { getMeta, migrate, schemaVersion, setMeta } from "./postgres_meta.ts";
import { readCaText, removeCaText, withCaLock, writeCaText } from "./postgres_ca.ts";
import * as policies from "./postgres_policies.ts";
import * as objects from "./postgres_objects.ts";
import { snapshotToSqlite } from "./postgres_snapshot.ts";
import { type CaText, holdsCaTexts, loadSqliteFile, readCaTexts } from "./postgres_load.ts";
import type { Contents } from "./contents.ts";
import * as tokens from "./postgres_tokens.ts";
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  Batch,
  CertificateQuery,
  Kind,
  Leases,
  ListQuery,
  NodeTouch,
  Objects,
  PolicyChange,
  PolicyQuery,
  PolicyRevision,
  RevisionLog,
  RevocationTarget,
  SharedCaMaterial,
  Store,
  StoredToken,
} from "./store.ts";

/** Options of {@link openPostgresStore}. */
export interface PostgresOptions {
  /** Run forward migrations on open. Default: true. */
  migrate?: boolean;
  /** This replica's name in the revision log. Default: the host name and a random suffix. */
  origin?: string;
  /** Most connections in the pool. Default: 10. */
  maxConnections?: number;
  /** Revision log entries older than this are pruned. Default: {@link DEFAULT_LOG_RETENTION_MS}. */
  logRetentionMs?: number;
}

/**
 * How long the revision log keeps entries: a replica cut off from the
 * database for longer reloads its whole view instead of catching up entry
 * by entry, which is what a restart does anyway.
 */
export const DEFAULT_LOG_RETENTION_MS = 15 * 60_000;
/** How often each replica prunes the log (pruning twice is harmless). */
const PRUNE_EVERY_MS = 60_000;
/** Give up connecting after this long (seconds, as postgres.js counts). */
const CONNECT_TIMEOUT_S = 10;
/** Runs of a transaction PostgreSQL aborted as a deadlock or serialization victim. */
const MAX_ATTEMPTS = 3;

/** int8 columns (revisions, ids) as numbers: they stay far below 2^53. */
const INT8_AS_NUMBER = {
  to: 20,
  from: [20],
  serialize: (value: number) => String(value),
  parse: (value: string) => Number(value),
};

/** True for the URLs this store takes: `postgres://…` or `postgresql://…`. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/**
 * Connects to the database at `url`, brings its schema up to date (under the
 * migration lock, see `postgres_meta.ts`) and returns the store.
 * Throws `StorageUnavailableError` when the database cannot be reached, and
 * `UnavailableError` when it is newer than this ironmesh.
 */
export async function openPostgresStore(
  url: string,
  options: PostgresOptions = {},
): Promise<PostgresStore> {
  const target = describeTarget(url);
  const origin = options.origin ?? `${Deno.hostname()}/${crypto.randomUUID().slice(0, 8)}`;
  const connection = {
    onnotice: () => {},
    connect_timeout: CONNECT_TIMEOUT_S,
    connection: { application_name: `ironmesh ${origin}` },
  };
  const stopDropping = dropStrayConnectErrors(url);
  const sql = postgres(url, {
    ...connection,
    max: options.maxConnections ?? 10,
    types: { int8: INT8_AS_NUMBER },
  });
  try {
    await sql`SELECT 1`;
    if (options.migrate ?? true) await migrate(sql);
  } catch (error) {
    await sql.end({ timeout: 0 });
    stopDropping();
    throw storeError(error, "open the store", target);
  }
  return new PostgresStore(sql, {
    url,
    target,
    origin,
    listener: new LogListener(url, { connection }),
    stopDropping,
    logRetentionMs: options.logRetentionMs ?? DEFAULT_LOG_RETENTION_MS,
  });
}

interface Parts {
  url: string;
  target: string;
  origin: string;
  listener: LogListener;
  /** Ends {@link dropStrayConnectErrors} for this store. */
  stopDropping: () => void;
  logRetentionMs: number;
}

/** The PostgreSQL implementation of {@link Store}. */
export class PostgresStore implements Store {
  readonly backend = "postgres";
  readonly log: RevisionLog;
  readonly leases: Leases;
  readonly caMaterial: SharedCaMaterial;
  readonly #sql: postgres.Sql;
  readonly #parts: Parts;
  readonly #prune: ReturnType<typeof setInterval>;
  /** Calls in progress, which {@link close} lets finish. */
  readonly #running = new Set<Promise<void>>();
  #closed = false;

  constructor(sql: postgres.Sql, parts: Parts) {
    this.#sql = sql;
    this.#parts = parts;
    this.log = {
      origin: parts.origin,
      head: () => this.#read("read the revision log", logHead),
      read: (after, limit) => this.#read("read the revision log", (s) => readLog(s, after, limit)),
      watch: (wake) => parts.listener.watch(wake),
    };
    this.leases = {
      acquire: (name, holder, ttlMs) =>
        this.#read(`take the lease "${name}"`, (s) => acquireLease(s, name, holder, ttlMs)),
      release: (name, holder) =>
        this.#read(`release the lease "${name}"`, (s) => releaseLease(s, name, holder)),
    };
    this.caMaterial = {
      read: (name) => this.#read(`read CA "${name}"`, (s) => readCaText(s, name)),
      write: (name, text) => this.#write(`write CA "${name}"`, (tx) => writeCaText(tx, name, text)),
      remove: (name) => this.#write(`remove CA "${name}"`, (tx) => removeCaText(tx, name)),
      exclusive: (fn) => this.#run("lock the CA", () => withCaLock(this.#sql, fn)),
    };
    this.#prune = setInterval(() => this.pruneLog().catch(() => {}), PRUNE_EVERY_MS);
  }

  /** The database, as messages name it: `user@host:port/database`. */
  get target(): string {
    return this.#parts.target;
  }

  /** Deletes revision log entries older than `olderThanMs`; returns how many. */
  pruneLog(olderThanMs = this.#parts.logRetentionMs): Promise<number> {
    return this.#read("prune the revision log", (sql) => pruneLog(sql, olderThanMs));
  }

  /** Runs `fn`, again if PostgreSQL aborted it as a deadlock or serialization victim. */
  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new UnavailableError(`Cannot ${what}: the store is closed`);
    const running = Promise.withResolvers<void>();
    this.#running.add(running.promise);
    try {
      for (let attempt = 1;; attempt++) {
        try {
          return await fn();
        } catch (error) {
          if (attempt < MAX_ATTEMPTS && isRetryable(error)) continue;
          throw storeError(error, what, this.#parts.target);
        }
      }
    } finally {
      this.#running.delete(running.promise);
      running.resolve();
    }
  }

  #read<T>(what: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
    return this.#run(what, () => fn(this.#sql));
  }

  /** Runs `fn` in a transaction that also appends what it changed to the revision log. */
  #write<T>(what: string, fn: (tx: postgres.TransactionSql) => Promise<Logged<T>>): Promise<T> {
    return this.#run(what, async () =>
      await this.#sql.begin(async (tx) => {
        const logged = await fn(tx);
        if (logged.changes.length > 0) await appendLog(tx, this.#parts.origin, logged);
        return logged.result;
      }) as T);
  }

  revision(): Promise<number> {
    return this.#read("read the registry revision", objects.registryRevision);
  }

  get<K extends Kind>(kind: K, key: string): Promise<Objects[K] | null> {
    return this.#read(`read the ${kind} "${key}"`, (sql) => objects.getObject(sql, kind, key));
  }

  list<K extends Kind>(kind: K, query: ListQuery<Objects[K]>): Promise<Objects[K][]> {
    return this.#read(`list ${kind}s`, (sql) => objects.listObjects(sql, kind, query));
  }

  counts(): Promise<Record<Kind, number>> {
    return this.#read("count registry objects", objects.countObjects);
  }

  async commit(batch: Batch): Promise<number> {
    if (batch.writes.length === 0 && !batch.expect?.length) return await this.revision();
    return await this.#write("commit registry changes", (tx) => objects.commitBatch(tx, batch));
  }

  async touchNodes(entries: readonly NodeTouch[]): Promise<void> {
    if (entries.length === 0) return;
    await this.#read("record heartbeat times", (sql) => objects.touchNodes(sql, entries));
  }

  createToken(token: Token, secretHash: string): Promise<void> {
    return this.#write(
      `create token "${token.id}"`,
      (tx) => tokens.createToken(tx, token, secretHash),
    );
  }

  getToken(id: string): Promise<StoredToken | null> {
    return this.#read(`read token "${id}"`, (sql) => tokens.getToken(sql, id));
  }

  listTokens(): Promise<Token[]> {
    return this.#read("list tokens", tokens.listTokens);
  }

  revokeToken(id: string, at: string): Promise<Token | null> {
    return this.#write(`revoke token "${id}"`, (tx) => tokens.revokeToken(tx, id, at));
  }

  recordIssuance(
    certificate: CertificateRecord,
    consume?: { tokenId: string; at: string },
  ): Promise<void> {
    return this.#write(
      `record certificate "${certificate.serial}"`,
      (tx) => certificates.recordIssuance(tx, certificate, consume),
    );
  }

  getCertificate(serial: string): Promise<CertificateRecord | null> {
    return this.#read(
      `read certificate "${serial}"`,
      (sql) => certificates.getCertificate(sql, serial),
    );
  }

  listCertificates(query: CertificateQuery): Promise<CertificateRecord[]> {
    return this.#read("list certificates", (sql) => certificates.listCertificates(sql, query));
  }

  revokeCertificates(
    target: RevocationTarget,
    at: string,
    reason: string,
  ): Promise<CertificateRecord[]> {
    return this.#write(
      "revoke certificates",
      (tx) => certificates.revokeCertificates(tx, target, at, reason),
    );
  }

  getPolicy(kind: PolicyKind, namespace: string, name: string): Promise<AnyPolicy | null> {
    return this.#read(
      `read ${kind} "${namespace}/${name}"`,
      (sql) => policies.getPolicy(sql, { kind, namespace, name }),
    );
  }

  listPolicies(query: PolicyQuery = {}): Promise<AnyPolicy[]> {
    return this.#read("list policies", (sql) => policies.listPolicies(sql, query));
  }

  writePolicies(change: PolicyChange): Promise<(AnyPolicy | null)[]> {
    return this.#write("write policies", (tx) => policies.writePolicies(tx, change));
  }

  policyHistory(kind: PolicyKind, namespace: string, name: string): Promise<PolicyRevision[]> {
    return this.#read(
      `read the history of ${kind} "${namespace}/${name}"`,
      (sql) => policies.policyHistory(sql, { kind, namespace, name }),
    );
  }

  policyRevision(): Promise<number> {
    return this.#read("read the policy revision", policies.policyRevision);
  }

  appendAudit(entry: AuditInput): Promise<void> {
    return this.#read("append to the audit log", (sql) => policies.insertAudit(sql, entry));
  }

  listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.#read("read the audit log", (sql) => policies.listAudit(sql, query));
  }

  getMeta(key: string): Promise<string | null> {
    return this.#read(`read setting "${key}"`, (sql) => getMeta(sql, key));
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.#write(`write setting "${key}"`, (tx) => setMeta(tx, key, value));
  }

  schemaVersion(): Promise<number> {
    return this.#read("read the schema version", schemaVersion);
  }

  snapshot(path: string): Promise<void> {
    return this.#read("take a snapshot", (sql) => snapshotToSqlite(sql, path));
  }

  /**
   * Copies a SQLite store file and the CA's texts into this database, which
   * must be empty, in one transaction (`postgres_load.ts`); returns what was copied.
   */
  loadSqliteFile(path: string, caTexts: readonly CaText[]): Promise<Contents> {
    return this.#read(
      "copy into the database",
      (sql) => loadSqliteFile(sql, path, { caTexts, target: this.target }),
    );
  }

  /** Whether this database's schema keeps the CA's texts (`postgres_load.ts`). */
  holdsCaTexts(): Promise<boolean> {
    return this.#read("read the schema", holdsCaTexts);
  }

  /** The CA's texts this database keeps, by name (none when its schema keeps none). */
  caTexts(): Promise<CaText[]> {
    return this.#read("read the CA", readCaTexts);
  }

  async ping(): Promise<void> {
    await this.#read("reach the database", (sql) => sql`SELECT 1`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#prune);
    await Promise.all(this.#running);
    await this.#parts.listener.close();
    // Every call has finished, so nothing is lost by ending the connections at once; waiting
    // for postgres.js to end them gracefully can take until a timeout after an outage, since a
    // connection that failed a query to a crashed server never reports itself idle again.
    await this.#sql.end({ timeout: 0 });
    this.#parts.stopDropping();
  }
}
