/**
 * What one enrolment costs in SQLite, and what would make it cheaper: the
 * statements `SqliteStore.recordIssuance` runs for a join-token enrolment
 * (read and rewrite the token's JSON, look for certificates to supersede,
 * insert the certificate), on a copy of the `tokens` and `certificates`
 * schema of `store/migrations.ts`, with the store's pragmas (WAL,
 * `synchronous=NORMAL`).
 *
 *   deno run -A scripts/bench/ca_sqlite.ts [count]
 *
 * Variants: as the store does it (one `BEGIN IMMEDIATE … COMMIT` per
 * enrolment, `certificates` WITHOUT ROWID); a rowid `certificates` table;
 * 16 enrolments per transaction (group commit); both.
 */
import { DatabaseSync } from "node:sqlite";
import { processCpuSeconds } from "./ca_server.ts";

interface Variant {
  name: string;
  rowid: boolean;
  batch: number;
}

const VARIANTS: Variant[] = [
  { name: "as the store does it", rowid: false, batch: 1 },
  { name: "certificates as a rowid table", rowid: true, batch: 1 },
  { name: "16 enrolments per transaction", rowid: false, batch: 16 },
  { name: "rowid table + 16 per transaction", rowid: true, batch: 16 },
];

/** Cost of one enrolment's writes, in µs. */
export interface SqliteCost {
  name: string;
  wallUs: number;
  cpuUs: number;
  /** The longest single transaction (a WAL checkpoint lands in one), ms. */
  maxTransactionMs: number;
}

function measure(variant: Variant, count: number): SqliteCost {
  const dir = Deno.makeTempDirSync({ prefix: "ironmesh-bench-sqlite-" });
  const db = new DatabaseSync(`${dir}/store.db`);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec(`CREATE TABLE tokens (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL,
      created_at TEXT NOT NULL, data TEXT NOT NULL) WITHOUT ROWID`);
    db.exec(`CREATE TABLE certificates (
        serial TEXT ${variant.rowid ? "NOT NULL UNIQUE" : "PRIMARY KEY"},
        node TEXT NOT NULL, token_id TEXT, root TEXT NOT NULL, not_after TEXT NOT NULL,
        superseded_at TEXT, revoked_at TEXT, data TEXT NOT NULL
      ) ${variant.rowid ? "" : "WITHOUT ROWID"};
      CREATE INDEX certificates_by_node ON certificates (node, not_after);
      CREATE INDEX certificates_by_token ON certificates (token_id);
      CREATE INDEX certificates_by_root ON certificates (root, not_after);`);
    const now = new Date().toISOString();
    const token = {
      id: "0123456789abcdef",
      kind: "join",
      namespace: "default",
      serviceAccount: "bench",
      node: null,
      uses: 10_000_000,
      used: 0,
      description: "",
      createdAt: now,
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      revokedAt: null,
    };
    db.prepare("INSERT INTO tokens VALUES (?, '', ?, ?)").run(token.id, now, JSON.stringify(token));
    const getToken = db.prepare("SELECT data FROM tokens WHERE id = ?");
    const putToken = db.prepare("UPDATE tokens SET data = ? WHERE id = ?");
    const superseded = db.prepare(
      "SELECT serial, data FROM certificates WHERE node = ? AND superseded_at IS NULL AND serial != ?",
    );
    const insert = db.prepare(
      "INSERT OR REPLACE INTO certificates (serial, node, token_id, root, not_after, superseded_at, revoked_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    const root = "ab".repeat(32);
    const enrol = (i: number) => {
      const t = JSON.parse((getToken.get(token.id) as { data: string }).data);
      putToken.run(JSON.stringify({ ...t, used: t.used + 1 }), token.id);
      const serial = Array.from(
        crypto.getRandomValues(new Uint8Array(16)),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      const node = `bench-${i}`;
      superseded.all(node, serial);
      const at = new Date().toISOString();
      const notAfter = new Date(Date.now() + 86_400_000).toISOString();
      const record = {
        serial,
        node,
        identity: "spiffe://ironmesh.local/ns/default/sa/bench",
        tokenId: token.id,
        root,
        kind: "enrol",
        notBefore: at,
        notAfter,
        issuedAt: at,
        supersededAt: null,
        revokedAt: null,
        revokeReason: null,
      };
      insert.run(serial, node, token.id, root, notAfter, null, null, JSON.stringify(record));
    };
    const cpu0 = processCpuSeconds("self") ?? NaN;
    const start = performance.now();
    let maxTransactionMs = 0;
    for (let i = 0; i < count; i += variant.batch) {
      const t0 = performance.now();
      db.exec("BEGIN IMMEDIATE");
      for (let j = i; j < Math.min(count, i + variant.batch); j++) enrol(j);
      db.exec("COMMIT");
      maxTransactionMs = Math.max(maxTransactionMs, performance.now() - t0);
    }
    const wallUs = (performance.now() - start) * 1000 / count;
    const cpuUs = ((processCpuSeconds("self") ?? NaN) - cpu0) * 1e6 / count;
    return { name: variant.name, wallUs, cpuUs, maxTransactionMs };
  } finally {
    db.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Measures every variant with `count` enrolments on a fresh database each. */
export function measureSqliteEnrolment(count = 10_000): SqliteCost[] {
  return VARIANTS.map((v) => measure(v, count));
}

if (import.meta.main) {
  const count = Number(Deno.args[0] ?? 10_000);
  console.log(
    `| SQLite writes of one enrolment (${count} enrolments) | Wall µs | CPU µs | Longest transaction ms |`,
  );
  console.log("| --- | --- | --- | --- |");
  for (const c of measureSqliteEnrolment(count)) {
    console.log(
      `| ${c.name} | ${c.wallUs.toFixed(0)} | ${c.cpuUs.toFixed(0)} | ${
        c.maxTransactionMs.toFixed(1)
      } |`,
    );
  }
}
