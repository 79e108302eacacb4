/**
 * The embedded SQLite store. This file opens the database and maps the
 * {@link Store} contract onto one file per domain: `sqlite_objects.ts`
 * (registry objects), `sqlite_tokens.ts`, `sqlite_certificates.ts`,
 * `sqlite_policies.ts` (policies, history, audit) and `sqlite_meta.ts`
 * (schema and settings), all over the connection in `sqlite_db.ts`.
 */
import { DatabaseSync } from "node:sqlite";
import type { CertificateRecord, Token } from "../core/model.ts";
import type { AnyPolicy, PolicyKind } from "../core/policy/model.ts";
import * as certificates from "./sqlite_certificates.ts";
import { SqliteDb } from "./sqlite_db.ts";
import * as meta from "./sqlite_meta.ts";
import * as objects from "./sqlite_objects.ts";
import * as policies from "./sqlite_policies.ts";
import * as tokens from "./sqlite_tokens.ts";
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  Batch,
  CertificateQuery,
  Kind,
  ListQuery,
  NodeTouch,
  Objects,
  PolicyChange,
  PolicyQuery,
  PolicyRevision,
  Store,
  StoredToken,
} from "./store.ts";

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
 */
export function openSqliteStore(path: string, options: SqliteOptions = {}): SqliteStore {
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec("PRAGMA foreign_keys = ON");
    const store = new SqliteStore(db);
    if (options.migrate ?? true) store.migrate();
    return store;
  } catch (error) {
    db.close();
    throw error;
  }
}

/** The embedded SQLite implementation of {@link Store}. */
export class SqliteStore implements Store {
  readonly backend = "sqlite";
  readonly #db: SqliteDb;

  constructor(db: DatabaseSync) {
    this.#db = new SqliteDb(db);
  }

  /** Applies every migration newer than the database, each in its own transaction. */
  migrate(): void {
    meta.migrate(this.#db);
  }

  revision(): Promise<number> {
    return Promise.try(() => objects.registryRevision(this.#db));
  }

  get<K extends Kind>(kind: K, key: string): Promise<Objects[K] | null> {
    return Promise.try(() => objects.getObject(this.#db, kind, key));
  }

  list<K extends Kind>(kind: K, query: ListQuery<Objects[K]>): Promise<Objects[K][]> {
    return Promise.try(() => objects.listObjects(this.#db, kind, query));
  }

  counts(): Promise<Record<Kind, number>> {
    return Promise.try(() => objects.countObjects(this.#db));
  }

  commit(batch: Batch): Promise<number> {
    return Promise.try(() => objects.commitBatch(this.#db, batch));
  }

  touchNodes(entries: readonly NodeTouch[]): Promise<void> {
    return Promise.try(() => objects.touchNodes(this.#db, entries));
  }

  createToken(token: Token, secretHash: string): Promise<void> {
    return Promise.try(() => tokens.createToken(this.#db, token, secretHash));
  }

  getToken(id: string): Promise<StoredToken | null> {
    return Promise.try(() => tokens.getToken(this.#db, id));
  }

  listTokens(): Promise<Token[]> {
    return Promise.try(() => tokens.listTokens(this.#db));
  }

  revokeToken(id: string, at: string): Promise<Token | null> {
    return Promise.try(() => tokens.revokeToken(this.#db, id, at));
  }

  recordIssuance(
    certificate: CertificateRecord,
    consume?: { tokenId: string; at: string },
  ): Promise<void> {
    return Promise.try(() => certificates.recordIssuance(this.#db, certificate, consume));
  }

  getCertificate(serial: string): Promise<CertificateRecord | null> {
    return Promise.try(() => certificates.getCertificate(this.#db, serial));
  }

  listCertificates(query: CertificateQuery): Promise<CertificateRecord[]> {
    return Promise.try(() => certificates.listCertificates(this.#db, query));
  }

  revokeCertificates(
    target: { node: string } | { tokenId: string },
    at: string,
    reason: string,
  ): Promise<CertificateRecord[]> {
    return Promise.try(() => certificates.revokeCertificates(this.#db, target, at, reason));
  }

  getPolicy(kind: PolicyKind, namespace: string, name: string): Promise<AnyPolicy | null> {
    return Promise.try(() => policies.getPolicy(this.#db, { kind, namespace, name }));
  }

  listPolicies(query: PolicyQuery = {}): Promise<AnyPolicy[]> {
    return Promise.try(() => policies.listPolicies(this.#db, query));
  }

  writePolicies(change: PolicyChange): Promise<(AnyPolicy | null)[]> {
    return Promise.try(() => policies.writePolicies(this.#db, change));
  }

  policyHistory(kind: PolicyKind, namespace: string, name: string): Promise<PolicyRevision[]> {
    return Promise.try(() => policies.policyHistory(this.#db, { kind, namespace, name }));
  }

  policyRevision(): Promise<number> {
    return Promise.try(() => policies.policyRevision(this.#db));
  }

  appendAudit(entry: AuditInput): Promise<void> {
    return Promise.try(() => policies.appendAudit(this.#db, entry));
  }

  listAudit(query: AuditQuery): Promise<AuditEntry[]> {
    return Promise.try(() => policies.listAudit(this.#db, query));
  }

  getMeta(key: string): Promise<string | null> {
    return Promise.try(() => meta.getMeta(this.#db, key));
  }

  setMeta(key: string, value: string): Promise<void> {
    return Promise.try(() => meta.setMeta(this.#db, key, value));
  }

  schemaVersion(): Promise<number> {
    return Promise.try(() => meta.schemaVersion(this.#db));
  }

  snapshot(path: string): Promise<void> {
    // VACUUM INTO reads one transaction's view of the database; WAL writers carry on meanwhile.
    return Promise.try(() => {
      this.#db.prepare("VACUUM INTO ?").run(path);
    });
  }

  ping(): Promise<void> {
    return Promise.try(() => {
      this.#db.stmt("SELECT 1").get();
    });
  }

  close(): Promise<void> {
    return Promise.try(() => this.#db.close());
  }
}
