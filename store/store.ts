import type { AnyPolicy, PolicyKind } from "../core/policy/model.ts";
import type {
  CertificateRecord,
  Health,
  Instance,
  MeshNode,
  Service,
  Token,
} from "../core/model.ts";

/** Whose certificates a revocation takes: a node's, or a join token lineage's. */
export type RevocationTarget = { node: string } | { tokenId: string };

/**
 * The storage contract. Every backend (the embedded SQLite default, PostgreSQL
 * for several replicas) implements it and passes the same contract suite
 * (`store/_testing.ts`). The modules above it never see SQL.
 *
 * Writes to the registry go through {@link Store.commit}: one atomic batch,
 * one new registry revision, optional per-object preconditions. Every object
 * carries the revision at which it last changed (its ETag).
 */
export interface Store {
  /** Backend name, e.g. `sqlite`, for logs and `/readyz`. */
  readonly backend: string;
  /** The current registry revision: 0 for an empty registry, then +1 per committed batch. */
  revision(): Promise<number>;
  /** One object by key, or `null`. */
  get<K extends Kind>(kind: K, key: string): Promise<Objects[K] | null>;
  /** Objects of a kind in key order, after `query.after`, at most `query.limit`. */
  list<K extends Kind>(kind: K, query: ListQuery<Objects[K]>): Promise<Objects[K][]>;
  /** How many objects of each kind exist. */
  counts(): Promise<Record<Kind, number>>;
  /**
   * Applies every write atomically, after checking every expectation, as one
   * new revision, which it returns. An empty batch changes nothing and returns
   * the current revision. Throws `PreconditionFailedError` when an
   * expectation fails; then nothing is written.
   */
  commit(batch: Batch): Promise<number>;
  /** Records heartbeat times in bulk. Not a registry change: no revision, no watcher woken. */
  touchNodes(entries: readonly NodeTouch[]): Promise<void>;

  /** Stores a new token; API tokens with the hash of their secret, join tokens with `""`. */
  createToken(token: Token, secretHash: string): Promise<void>;
  /** A token with its secret hash, or `null`. */
  getToken(id: string): Promise<StoredToken | null>;
  /** All tokens, newest first. */
  listTokens(): Promise<Token[]>;
  /** Marks a token revoked; returns it, or `null` when there is no such token. */
  revokeToken(id: string, at: string): Promise<Token | null>;

  /**
   * Records an issued certificate, atomically with the use of the join token
   * it was issued for (when `consume` is given) and with marking the node's
   * earlier certificates superseded. Throws `ConflictError` when the token
   * cannot be used (unknown, revoked, expired or used up); then nothing is
   * recorded, so a replayed token never yields a recorded certificate.
   */
  recordIssuance(
    certificate: CertificateRecord,
    consume?: { tokenId: string; at: string },
  ): Promise<void>;
  /** One certificate record, or `null`. */
  getCertificate(serial: string): Promise<CertificateRecord | null>;
  /** Certificate records matching every given filter, oldest first. */
  listCertificates(query: CertificateQuery): Promise<CertificateRecord[]>;
  /**
   * Revokes every unexpired, unrevoked certificate of a node or of a join
   * token's lineage; returns the records revoked now.
   */
  revokeCertificates(
    target: RevocationTarget,
    at: string,
    reason: string,
  ): Promise<CertificateRecord[]>;

  /** One policy, or `null`. MeshConfig's namespace is `""`. */
  getPolicy(kind: PolicyKind, namespace: string, name: string): Promise<AnyPolicy | null>;
  /** Policies matching every given filter, by kind, namespace and name. */
  listPolicies(query?: PolicyQuery): Promise<AnyPolicy[]>;
  /**
   * Applies every policy write atomically after checking every expectation:
   * each written object gets its next revision (one more than the highest in
   * its history, so revisions never repeat across a delete), its history gets
   * one entry and the audit log one `ok` entry per write. Returns, per write
   * in order, the stored object (`null` for a delete). Throws
   * `PreconditionFailedError` when an expectation fails and `NotFoundError`
   * when a deleted object does not exist; then nothing is written.
   */
  writePolicies(change: PolicyChange): Promise<(AnyPolicy | null)[]>;
  /** Every revision of one policy, oldest first (deletes included). */
  policyHistory(kind: PolicyKind, namespace: string, name: string): Promise<PolicyRevision[]>;
  /** Bumped by every {@link writePolicies}: lets watchers and the push pipeline notice changes. */
  policyRevision(): Promise<number>;
  /** Records a refused write (successful ones are recorded by {@link writePolicies}). */
  appendAudit(entry: AuditInput): Promise<void>;
  /** Audit entries after `query.after` (an id), oldest first, at most `query.limit`. */
  listAudit(query: AuditQuery): Promise<AuditEntry[]>;

  /** A small server-wide setting (e.g. the admin token id), or `null`. */
  getMeta(key: string): Promise<string | null>;
  /** Sets a small server-wide setting. */
  setMeta(key: string, value: string): Promise<void>;
  /** The schema version this database is at. */
  schemaVersion(): Promise<number>;
  /**
   * Writes a consistent copy of the whole database to `path` (which must not
   * exist) while reads and writes go on: what was committed before the call
   * began is in it.
   */
  snapshot(path: string): Promise<void>;
  /** Cheap liveness probe of the backend, for `/readyz`. */
  ping(): Promise<void>;
  /** Flushes and closes; the store is unusable afterwards. */
  close(): Promise<void>;
  /**
   * The revision log, on a store that several replicas share (PostgreSQL);
   * absent on one that only this process writes (SQLite).
   */
  readonly log?: RevisionLog;
  /**
   * Leases, on a store that several replicas share (PostgreSQL): how they
   * agree which one holds a singleton duty. Absent on SQLite, whose one
   * server holds them all.
   */
  readonly leases?: Leases;
  /**
   * The CA's material (certificates, encrypted keys, its state), on a store
   * that several replicas share, so they sign under one CA. Absent on
   * SQLite, whose one server keeps it in its data directory.
   */
  readonly caMaterial?: SharedCaMaterial;
}

/**
 * Named texts of the CA that every replica of a shared store reads: what a
 * single server keeps as files in `DATA_DIR/ca/`. The store never decrypts
 * anything; keys arrive encrypted. Each write or removal is logged as a
 * `ca` change naming the text, so other replicas reload the CA.
 */
export interface SharedCaMaterial {
  /** The text stored under `name`, or `null`. */
  read(name: string): Promise<string | null>;
  /** Stores `text` under `name`, replacing what was there. */
  write(name: string, text: string): Promise<void>;
  /** Removes `name`; nothing happens when it is absent. */
  remove(name: string): Promise<void>;
  /**
   * Runs `fn` while holding the CA's database-wide lock, so replicas create
   * or change the CA one at a time (two first starts agree on one CA).
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * Named leases timed by the database's clock, so replicas' clocks never
 * decide who holds one. Each new holder gets a higher `epoch` (a fencing
 * token): a holder that renews keeps its epoch, so an unchanged epoch means
 * nobody else held the lease in between.
 */
export interface Leases {
  /**
   * Takes the lease for `holder` when it is free or expired, renews it when
   * `holder` has it, and returns it as it stands afterwards (held by
   * someone else when it was taken).
   */
  acquire(name: string, holder: string, ttlMs: number): Promise<Lease>;
  /** Ends `holder`'s lease at once (a clean stop), so another can take it without waiting. */
  release(name: string, holder: string): Promise<void>;
}

/** A lease as {@link Leases.acquire} found it. */
export interface Lease {
  holder: string;
  epoch: number;
  /** How long until it expires, by the database's clock (≤ 0: expired). */
  remainingMs: number;
}

/**
 * The log of every write to a shared store, which other replicas follow.
 * Each write appends one entry in its own transaction, so an acknowledged
 * write is in the log and nothing in the log was rolled back. Entries name
 * the keys a write changed, not their values: a follower re-reads what it
 * needs, so applying an entry twice, or after a later write to the same key,
 * is harmless. Heartbeat times ({@link Store.touchNodes}) are not logged:
 * they change no revision and no other replica acts on them one by one.
 *
 * Follow it by revision, woken by {@link watch}: read after the last
 * revision applied until the page is short; on a gap, reload everything,
 * then go on after the page's `head`.
 */
export interface RevisionLog {
  /** This replica's name in the entries it writes ({@link LogEntry.origin}). */
  readonly origin: string;
  /** The newest revision in the log; 0 before the first write. */
  head(): Promise<number>;
  /** Entries after revision `after`, oldest first, at most `limit`. */
  read(after: number, limit: number): Promise<LogPage>;
  /**
   * Calls `wake` whenever entries may have been appended, by any replica,
   * and after every (re)connection of the notification channel, since
   * notifications sent while it was down are lost. Returns the function that
   * stops it.
   */
  watch(wake: () => void): () => void;
}

/** What {@link RevisionLog.read} returns. */
export interface LogPage {
  entries: LogEntry[];
  /** The newest revision when the read began. */
  head: number;
  /**
   * True when entries after `after` are no longer in the log (pruned, or the
   * database was replaced): the reader must reload its whole view, then
   * continue after `head`.
   */
  gap: boolean;
}

/** One write, as the revision log records it. */
export interface LogEntry {
  /** Increasing without gaps, in commit order. */
  revision: number;
  /** When it was committed, by the database's clock (ISO 8601). */
  at: string;
  /** The replica that wrote it ({@link RevisionLog.origin}). */
  origin: string;
  /** The registry revision this write made, for a registry commit. */
  registry: number | null;
  /** The policy revision this write made, for a policy change. */
  policies: number | null;
  /** Every key the write changed, each once. */
  changes: LogChange[];
}

/**
 * One key a write changed; keys are those of the store's own calls. A
 * follower turns them into the keyed change events a local write makes:
 * `service` → the service's shape; `instance` → the endpoints of each of
 * its `services`; `node` → the node; `policy` (`policyKey()`, MeshConfig's
 * namespace `""`) → the policy; `certificate` → its `node`, and a revoked
 * one (re-read it) cuts that node's connections; `token` → drop what is
 * cached about it; `meta` → a setting; `ca` → a text of
 * {@link SharedCaMaterial} (the CA reloads when its `state.json` moves).
 */
export type LogChange =
  | { kind: "service" | "node" | "policy" | "token" | "meta" | "ca"; key: string }
  /** `services`: the keys of the services it belonged to before and after the write. */
  | { kind: "instance"; key: string; services: string[] }
  /** A certificate issued, superseded or revoked; `node` is its holder. */
  | { kind: "certificate"; key: string; node: string };

/** The kinds of registry object and their types. */
export interface Objects {
  service: Service;
  node: MeshNode;
  instance: Instance;
}
/** A registry object kind. */
export type Kind = keyof Objects;
/** The kinds, in a fixed order. */
export const KINDS: readonly Kind[] = ["service", "node", "instance"];

/** A list request; all filters are optional and combine with AND. */
export interface ListQuery<T> {
  namespace?: string;
  service?: string;
  node?: string;
  health?: Health;
  /** Exclusive start key: continue after this key (the cursor). */
  after?: string;
  /** Most objects to return. */
  limit: number;
  /** A further filter the backend cannot index (e.g. a label selector). */
  where?: (value: T) => boolean;
}

/** A write of one object; `value.revision` is ignored and stamped by the store. */
export type Write =
  | { op: "put"; kind: "service"; value: Service }
  | { op: "put"; kind: "node"; value: MeshNode }
  | { op: "put"; kind: "instance"; value: Instance }
  | { op: "delete"; kind: Kind; key: string };

/** A precondition: the object is at `revision`, or absent when `revision` is `null`. */
export interface Expectation {
  kind: Kind;
  key: string;
  revision: number | null;
}

/** One atomic registry change. */
export interface Batch {
  writes: readonly Write[];
  expect?: readonly Expectation[];
  /**
   * A lease the writer must still hold when the batch commits, on a store
   * with {@link Store.leases}: a leader that lost its lease without knowing
   * (paused, cut off) writes nothing. Ignored by a store without leases.
   */
  fence?: Fence;
}

/** A lease held by `holder` at `epoch` (see {@link Leases}). */
export interface Fence {
  lease: string;
  holder: string;
  epoch: number;
}

/** A heartbeat time to record. */
export interface NodeTouch {
  name: string;
  lastHeartbeat: string;
}

/** A token as the store holds it. */
export interface StoredToken {
  token: Token;
  secretHash: string;
}

/** Filters of {@link Store.listCertificates}; all optional, combined with AND. */
export interface CertificateQuery {
  node?: string;
  tokenId?: string;
  /** Root fingerprint the certificate chains to. */
  root?: string;
  /** Only certificates still valid at this time (not expired). */
  liveAt?: string;
  /** Only certificates neither revoked nor superseded. */
  current?: boolean;
  /** Only revoked certificates. */
  revoked?: boolean;
}

/** The key of a registry object: `namespace/name` for services, the name or id otherwise. */
export function keyOf(kind: Kind, value: Service | MeshNode | Instance): string {
  switch (kind) {
    case "service": {
      const s = value as Service;
      return `${s.namespace}/${s.name}`;
    }
    case "node":
      return (value as MeshNode).name;
    case "instance":
      return (value as Instance).id;
  }
}

/** Filters of {@link Store.listPolicies}; all optional, combined with AND. */
export interface PolicyQuery {
  kind?: PolicyKind;
  namespace?: string;
}

/** What one policy write did to its object. */
export type PolicyOp = "create" | "update" | "delete" | "rollback";

/** One write of a {@link PolicyChange}. */
export type PolicyWrite =
  /**
   * Stores `policy`; the store stamps `metadata.revision`, keeps `createdAt`
   * of an existing object, and sets `updatedAt`/`updatedBy` from the change.
   * `op` is `rollback` when the content comes from an earlier revision.
   */
  | { op: "put"; policy: AnyPolicy; rollback?: boolean }
  | { op: "delete"; kind: PolicyKind; namespace: string; name: string };

/** A precondition on a policy: at `revision`, or absent when `revision` is `null`. */
export interface PolicyExpectation {
  kind: PolicyKind;
  namespace: string;
  name: string;
  revision: number | null;
}

/** One atomic policy change, with who made it for history and audit. */
export interface PolicyChange {
  writes: readonly PolicyWrite[];
  expect?: readonly PolicyExpectation[];
  /** The caller: a token id, or `node:<name>`. */
  actor: string;
  /** ISO 8601 time of the change. */
  at: string;
}

/** One entry of a policy's history. */
export interface PolicyRevision {
  kind: PolicyKind;
  namespace: string;
  name: string;
  revision: number;
  op: PolicyOp;
  at: string;
  actor: string;
  /** The object as stored by this revision; `null` for a delete. */
  object: AnyPolicy | null;
}

/** A write to record in the audit log. */
export interface AuditInput {
  at: string;
  actor: string;
  /** `apply`, `delete`, `rollback`. */
  action: string;
  kind: string;
  namespace: string;
  name: string;
  outcome: "ok" | "refused";
  /** The HTTP status the caller got. */
  status: number;
  /** The revision written (`ok`), or `null`. */
  revision: number | null;
  /** Why it was refused, or what changed; one line. */
  detail: string;
}

/** One audit log entry. */
export interface AuditEntry extends AuditInput {
  /** Increasing: the cursor of {@link AuditQuery.after}. */
  id: number;
}

/** Filters of {@link Store.listAudit}. */
export interface AuditQuery {
  after?: number;
  limit: number;
  kind?: string;
  namespace?: string;
  name?: string;
  outcome?: "ok" | "refused";
}
