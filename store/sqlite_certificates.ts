/**
 * Issued workload certificates in the SQLite store: the deny list (revoked
 * serials) and the rotation progress (which certificates chain to which root).
 */
import type { SQLInputValue } from "node:sqlite";
import type { CertificateRecord } from "../core/model.ts";
import type { SqliteDb } from "./sqlite_db.ts";
import { consumeJoinToken } from "./sqlite_tokens.ts";
import type { CertificateQuery, RevocationTarget } from "./store.ts";

/**
 * Records an issued certificate in one transaction with the use of its join
 * token and with superseding the node's earlier certificates.
 */
export function recordIssuance(
  db: SqliteDb,
  certificate: CertificateRecord,
  consume?: { tokenId: string; at: string },
): void {
  db.transaction(() => {
    if (consume) consumeJoinToken(db, consume.tokenId, consume.at);
    const superseded = db.stmt(
      "SELECT serial, data FROM certificates WHERE node = ? AND superseded_at IS NULL AND serial != ?",
    ).all(certificate.node, certificate.serial) as { serial: string; data: string }[];
    for (const row of superseded) {
      putCertificate(db, { ...JSON.parse(row.data), supersededAt: certificate.issuedAt });
    }
    putCertificate(db, certificate);
  });
}

/** One certificate record, or `null`. */
export function getCertificate(db: SqliteDb, serial: string): CertificateRecord | null {
  const row = db.stmt("SELECT data FROM certificates WHERE serial = ?").get(serial) as
    | { data: string }
    | undefined;
  return row ? JSON.parse(row.data) as CertificateRecord : null;
}

/** Certificate records matching every given filter, oldest expiry first. */
export function listCertificates(db: SqliteDb, query: CertificateQuery): CertificateRecord[] {
  const clauses: string[] = ["1 = 1"];
  const params: SQLInputValue[] = [];
  if (query.node !== undefined) {
    clauses.push("node = ?");
    params.push(query.node);
  }
  if (query.tokenId !== undefined) {
    clauses.push("token_id = ?");
    params.push(query.tokenId);
  }
  if (query.root !== undefined) {
    clauses.push("root = ?");
    params.push(query.root);
  }
  if (query.liveAt !== undefined) {
    clauses.push("not_after > ?");
    params.push(query.liveAt);
  }
  if (query.current) clauses.push("superseded_at IS NULL AND revoked_at IS NULL");
  if (query.revoked) clauses.push("revoked_at IS NOT NULL");
  const rows = db.stmt(
    `SELECT data FROM certificates WHERE ${clauses.join(" AND ")} ORDER BY not_after, serial`,
  ).all(...params) as { data: string }[];
  return rows.map((r) => JSON.parse(r.data) as CertificateRecord);
}

/** Revokes the unexpired, unrevoked certificates of a node or a token's lineage. */
export function revokeCertificates(
  db: SqliteDb,
  target: RevocationTarget,
  at: string,
  reason: string,
): CertificateRecord[] {
  return db.transaction(() => {
    const [column, value] = "node" in target ? ["node", target.node] : ["token_id", target.tokenId];
    const rows = db.stmt(
      `SELECT data FROM certificates WHERE ${column} = ? AND revoked_at IS NULL AND not_after > ?`,
    ).all(value, at) as { data: string }[];
    const revoked = rows.map((r) => ({
      ...JSON.parse(r.data) as CertificateRecord,
      revokedAt: at,
      revokeReason: reason,
    }));
    for (const c of revoked) putCertificate(db, c);
    return revoked;
  });
}

function putCertificate(db: SqliteDb, c: CertificateRecord): void {
  db.stmt(
    "INSERT OR REPLACE INTO certificates (serial, node, token_id, root, not_after, superseded_at, revoked_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  ).run(
    c.serial,
    c.node,
    c.tokenId,
    c.root,
    c.notAfter,
    c.supersededAt,
    c.revokedAt,
    JSON.stringify(c),
  );
}
