import type {
  CertificateRecord,
  Health,
  Instance,
  MeshNode,
  Service,
  Token,
} from "../core/model.ts";

/**
 * The storage contract. Every backend (the embedded SQLite default, PostgreSQL
 * for several replicas) implements it and passes the same contract suite
 * (`store/contract.ts`). The modules above it never see SQL.
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
    target: { node: string } | { tokenId: string },
    at: string,
    reason: string,
  ): Promise<CertificateRecord[]>;

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
}

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
