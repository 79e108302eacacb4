/**
 * The embedded SQLite store. This file opens the database and maps the
 * {@link store.Store} contract onto one file per domain: `sqlite_objects.ts`
 * (registry objects), `sqlite_tokens.ts`, `sqlite_certificates.ts`,
 * `sqlite_policies.ts` (policies, history, audit) and `sqlite_meta.ts`
 * (schema and settings), all over the connection in `sqlite_db.ts`.
 */
import { DatabaseSync } from "node:sqlite";
import { StorageUnavailableError } from "../core/errors.ts";
import type { CertificateRecord, Token } from "../core/model.ts";
import type { AnyPolicy, PolicyKind } from "../core/policy/model.ts";
import * as certificates from "./sqlite_certificates.ts";
import { SqliteDb } from "./sqlite_db.ts";
import { sqliteStoreError } from "./sqlite_errors.ts";
import * as meta from "./sqlite_meta.ts";
import * as objects from "./sqlite_objects.ts";
import * as policies from "./sqlite_policies.ts";
import * as tokens from "./sqlite_tokens.ts";
import type * as store from "./store.ts";

/** The meta key `ping()` writes to find out whether writes work again. */
const READY_PROBE_META = "ready_probe";

/** Options of {@link openSqliteStore}. */
export interface SqliteOptions {
  /** Run forward migrations on open. Default: true. */
  migrate?: boolean;
}

/**
 * Opens (creating if needed) the embedded SQLite store at `path` and brings
 * its schema up to date.
 *
 * WAL with `synchronous=NORMAL` means a commit does not fsync; the WAL is
 * synced at checkpoints. A crash of the machine can lose the last moments of
 * writes but never corrupts the database, which is the trade Consul and etcd
 * users accept for registry data that agents re-send anyway.
 *
 * A new database file is created 0600 (SQLite gives its WAL and shared-memory
 * files the same mode): it holds token hashes and the audit log. A file that
 * cannot be opened or written is a `StorageUnavailableError` naming it.
 */
export function openSqliteStore(path: string, options: SqliteOptions = {}): SqliteStore {
  let db: DatabaseSync;
  try {
    if (path !== ":memory:" && !path.startsWith("file:")) {
      // SQLite would create it with the umask's mode (0644 usually).
      Deno.openSync(path, { write: true, create: true, mode: 0o600 }).close();
    }
    db = new DatabaseSync(path);
  } catch (error) {
    throw openError(error, path);
  }
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec("PRAGMA foreign_keys = ON");
    const store = new SqliteStore(db, path);
    if (options.migrate ?? true) store.migrate();
    return store;
  } catch (error) {
    db.close();
    throw openError(error, path);
  }
}

/** A failure to open `path`, in words: the SQLite error's or the file system's. */
function openError(error: unknown, path: string): unknown {
  const translated = sqliteStoreError(error, "open the store", path);
  if (translated !== error) return translated;
  if (error instanceof Deno.errors.PermissionDenied || isFileSystemError(error)) {
    return new StorageUnavailableError(
      `Cannot open the store: SQLite database "${path}": ${(error as Error).message}`,
      { cause: error },
    );
  }
  return error;
}

function isFileSystemError(error: unknown): boolean {
  return /\bos error \d+\b/.test((error as Error)?.message ?? "");
}

/** The embedded SQLite implementation of {@link store.Store}. */
export class SqliteStore implements store.Store {
  readonly backend = "sqlite";
  readonly #db: SqliteDb;
  readonly #path: string;
  /** The last write's storage failure, until a write succeeds: `/readyz` answers 503 meanwhile. */
  #writeFailure: StorageUnavailableError | null = null;

  constructor(db: DatabaseSync, path = ":memory:") {
    this.#db = new SqliteDb(db);
    this.#path = path;
  }

  /** Applies every migration newer than the database, each in its own transaction. */
  migrate(): void {
    meta.migrate(this.#db);
  }

  #read<T>(what: string, fn: () => T): Promise<T> {
    return Promise.try(() => {
      try {
        return fn();
      } catch (error) {
        throw sqliteStoreError(error, what, this.#path);
      }
    });
  }

  #write<T>(what: string, fn: () => T): Promise<T> {
    return Promise.try(() => {
      try {
        const result = fn();
        this.#writeFailure = null;
        return result;
      } catch (error) {
        const translated = sqliteStoreError(error, what, this.#path);
        if (translated instanceof StorageUnavailableError) this.#writeFailure = translated;
        throw translated;
      }
    });
  }

  revision(): Promise<number> {
    return this.#read("read the registry revision", () => objects.registryRevision(this.#db));
  }

  get<K extends store.Kind>(kind: K, key: string): Promise<store.Objects[K] | null> {
    return this.#read("read a registry object", () => objects.getObject(this.#db, kind, key));
  }

  list<K extends store.Kind>(
    kind: K,
    query: store.ListQuery<store.Objects[K]>,
  ): Promise<store.Objects[K][]> {
    return this.#read("list registry objects", () => objects.listObjects(this.#db, kind, query));
  }

  counts(): Promise<Record<store.Kind, number>> {
    return this.#read("count registry objects", () => objects.countObjects(this.#db));
  }

  commit(batch: store.Batch): Promise<number> {
    return this.#write("commit registry changes", () => objects.commitBatch(this.#db, batch));
  }

  touchNodes(entries: readonly store.NodeTouch[]): Promise<void> {
    return this.#write("record heartbeat times", () => objects.touchNodes(this.#db, entries));
  }

  createToken(token: Token, secretHash: string): Promise<void> {
    return this.#write("create a token", () => tokens.createToken(this.#db, token, secretHash));
  }

  getToken(id: string): Promise<store.StoredToken | null> {
    return this.#read("read a token", () => tokens.getToken(this.#db, id));
  }

  listTokens(): Promise<Token[]> {
    return this.#read("list tokens", () => tokens.listTokens(this.#db));
  }

  revokeToken(id: string, at: string): Promise<Token | null> {
    return this.#write("revoke a token", () => tokens.revokeToken(this.#db, id, at));
  }

  recordIssuance(
    certificate: CertificateRecord,
    consume?: { tokenId: string; at: string },
  ): Promise<void> {
    return this.#write(
      "record a certificate",
      () => certificates.recordIssuance(this.#db, certificate, consume),
    );
  }

  getCertificate(serial: string): Promise<CertificateRecord | null> {
    return this.#read("read a certificate", () => certificates.getCertificate(this.#db, serial));
  }

  listCertificates(query: store.CertificateQuery): Promise<CertificateRecord[]> {
    return this.#read("list certificates", () => certificates.listCertificates(this.#db, query));
  }

  revokeCertificates(
    target: store.RevocationTarget,
    at: string,
    reason: string,
  ): Promise<CertificateRecord[]> {
    return this.#write(
      "revoke certificates",
      () => certificates.revokeCertificates(this.#db, target, at, reason),
    );
  }

  getPolicy(kind: PolicyKind, namespace: string, name: string): Promise<AnyPolicy | null> {
    return this.#read(
      "read a policy",
      () => policies.getPolicy(this.#db, { kind, namespace, name }),
    );
  }

  listPolicies(query: store.PolicyQuery = {}): Promise<AnyPolicy[]> {
    return this.#read("list policies", () => policies.listPolicies(this.#db, query));
  }

  writePolicies(change: store.PolicyChange): Promise<(AnyPolicy | null)[]> {
    return this.#write("write policies", () => policies.writePolicies(this.#db, change));
  }

  policyHistory(
    kind: PolicyKind,
    namespace: string,
    name: string,
  ): Promise<store.PolicyRevision[]> {
    return this.#read(
      "read policy history",
      () => policies.policyHistory(this.#db, { kind, namespace, name }),
    );
  }

  policyRevision(): Promise<number> {
    return this.#read("read the policy revision", () => policies.policyRevision(this.#db));
  }

  appendAudit(entry: store.AuditInput): Promise<void> {
    return this.#write("append to the audit log", () => policies.appendAudit(this.#db, entry));
  }

  listAudit(query: store.AuditQuery): Promise<store.AuditEntry[]> {
    return this.#read("read the audit log", () => policies.listAudit(this.#db, query));
  }

  getMeta(key: string): Promise<string | null> {
    return this.#read("read a setting", () => meta.getMeta(this.#db, key));
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.#write("write a setting", () => meta.setMeta(this.#db, key, value));
  }

  schemaVersion(): Promise<number> {
    return this.#read("read the schema version", () => meta.schemaVersion(this.#db));
  }

  snapshot(path: string): Promise<void> {
    // VACUUM INTO reads one transaction's view of the database; WAL writers carry on meanwhile.
    return this.#read("take a snapshot", () => {
      this.#db.prepare("VACUUM INTO ?").run(path);
    });
  }

  /**
   * Fails while writes fail: after a write's storage failure, each ping tries
   * a small write of its own, so readiness comes back once the operator freed
   * the disk or made the directory writable, even with no other writes.
   */
  async ping(): Promise<void> {
    if (this.#writeFailure) {
      await this.#write(
        "write a readiness probe",
        () => meta.setMeta(this.#db, READY_PROBE_META, new Date().toISOString()),
      );
    }
    await this.#read("reach the database", () => this.#db.stmt("SELECT 1").get());
  }

  close(): Promise<void> {
    return Promise.try(() => this.#db.close());
  }
}
