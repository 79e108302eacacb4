/**
 * Issued certificates in the PostgreSQL store (the deny list and rotation
 * progress). Every certificate write takes one transaction-scoped advisory
 * lock, so two issuances for one node never both stay current (each would
 * otherwise supersede only what it saw).
 */
import type postgres from "postgres";
import type { CertificateRecord } from "../core/model.ts";
import type { Logged } from "./postgres_log.ts";
import { CERTIFICATES_LOCK, LOCK_CLASS } from "./postgres_meta.ts";
import { consumeJoinToken } from "./postgres_tokens.ts";
import type { CertificateQuery, LogChange, RevocationTarget } from "./store.ts";

type Sql = postgres.Sql | postgres.TransactionSql;
type Tx = postgres.TransactionSql;

/** See `Store.recordIssuance`. */
export async function recordIssuance(
  tx: Tx,
  certificate: CertificateRecord,
  consume?: { tokenId: string; at: string },
): Promise<Logged<void>> {
  await tx`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${CERTIFICATES_LOCK})`;
  const changes: LogChange[] = [];
  if (consume) {
    await consumeJoinToken(tx, consume.tokenId, consume.at);
    changes.push({ kind: "token", key: consume.tokenId });
  }
  const superseded = await tx<{ data: string }[]>`
    SELECT data FROM certificates
    WHERE node = ${certificate.node} AND superseded_at IS NULL AND serial <> ${certificate.serial}`;
  for (const row of superseded) {
    const old = {
      ...JSON.parse(row.data),
      supersededAt: certificate.issuedAt,
    } as CertificateRecord;
    await putCertificate(tx, old);
    changes.push({ kind: "certificate", key: old.serial, node: old.node });
  }
  await putCertificate(tx, certificate);
  changes.push({ kind: "certificate", key: certificate.serial, node: certificate.node });
  return { result: undefined, changes };
}

async function putCertificate(tx: Tx, c: CertificateRecord): Promise<void> {
  await tx`
    INSERT INTO certificates (serial, node, token_id, root, not_after, superseded_at, revoked_at, data)
    VALUES (${c.serial}, ${c.node}, ${c.tokenId}, ${c.root}, ${c.notAfter}, ${c.supersededAt},
      ${c.revokedAt}, ${JSON.stringify(c)})
    ON CONFLICT (serial) DO UPDATE SET
      node = EXCLUDED.node, token_id = EXCLUDED.token_id, root = EXCLUDED.root,
      not_after = EXCLUDED.not_after, superseded_at = EXCLUDED.superseded_at,
      revoked_at = EXCLUDED.revoked_at, data = EXCLUDED.data`;
}

/** One certificate record, or `null`. */
export async function getCertificate(sql: Sql, serial: string): Promise<CertificateRecord | null> {
  const [row] = await sql<
    { data: string }[]
  >`SELECT data FROM certificates WHERE serial = ${serial}`;
  return row ? JSON.parse(row.data) as CertificateRecord : null;
}

/** Certificate records matching every given filter, oldest first. */
export async function listCertificates(
  sql: Sql,
  query: CertificateQuery,
): Promise<CertificateRecord[]> {
  const equals = (column: string, value: string | undefined) =>
    value === undefined ? sql`` : sql`AND ${sql(column)} = ${value}`;
  const rows = await sql<{ data: string }[]>`
    SELECT data FROM certificates WHERE true
      ${equals("node", query.node)} ${equals("token_id", query.tokenId)}
      ${equals("root", query.root)}
      ${query.liveAt === undefined ? sql`` : sql`AND not_after > ${query.liveAt}`}
      ${query.current ? sql`AND superseded_at IS NULL AND revoked_at IS NULL` : sql``}
      ${query.revoked ? sql`AND revoked_at IS NOT NULL` : sql``}
    ORDER BY not_after, serial`;
  return rows.map((r) => JSON.parse(r.data) as CertificateRecord);
}

/** See `Store.revokeCertificates`. */
export async function revokeCertificates(
  tx: Tx,
  target: RevocationTarget,
  at: string,
  reason: string,
): Promise<Logged<CertificateRecord[]>> {
  await tx`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, ${CERTIFICATES_LOCK})`;
  const [column, value] = "node" in target ? ["node", target.node] : ["token_id", target.tokenId];
  const rows = await tx<{ data: string }[]>`
    SELECT data FROM certificates
    WHERE ${tx(column)} = ${value} AND revoked_at IS NULL AND not_after > ${at}`;
  const revoked = rows.map((r) => ({
    ...JSON.parse(r.data) as CertificateRecord,
    revokedAt: at,
    revokeReason: reason,
  }));
  for (const c of revoked) await putCertificate(tx, c);
  return {
    result: revoked,
    changes: revoked.map((c) => ({ kind: "certificate", key: c.serial, node: c.node })),
  };
}
