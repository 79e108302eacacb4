/**
 * Load process of the CA benchmark (`ca.ts` starts it; not meant to be run
 * by hand). It makes every key pair and CSR first, enrols a few warm-up
 * hosts, prints `{"type":"ready"}`, waits for a line on stdin, then enrols
 * `count` hosts through `POST /v1/ca/enrol` with at most `concurrency`
 * requests in flight and prints `{"type":"result", …}`.
 *
 * Usage: deno run -A scripts/bench/ca_load.ts '<LoadConfig as JSON>'
 */
import { x509 } from "../../ca/x509.ts";
import { processCpuSeconds } from "./ca_server.ts";
import { type LatencySummary, summarize } from "./ca_report.ts";

/** What the parent passes as the only argument, as JSON. */
export interface LoadConfig {
  /** Base URL, e.g. `http://127.0.0.1:1234` or `https://127.0.0.1:1235`. */
  url: string;
  /** The join token of the measured window, with `count` uses (the API allows up to 10,000). */
  token: string;
  /** A second join token, with `warmup` uses, for the warm-up enrolments. */
  warmupToken: string;
  /** Hosts enrolled in the measured window. */
  count: number;
  /** Hosts enrolled before it (not measured), so the server's JIT is warm. */
  warmup: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** Node names are `<prefix><i>` (and `<prefix>warm-<i>` for the warm-up). */
  prefix: string;
  /** For `https` URLs: a file holding the roots to trust, PEM. */
  caFile?: string;
}

/** What the load process reports after the window. */
export interface LoadResult {
  type: "result";
  ok: number;
  errors: number;
  /** HTTP status (or `network`) → count, for every non-200 answer. */
  failures: Record<string, number>;
  /** The first failure's text, trimmed. */
  firstFailure: string | null;
  /** Wall-clock seconds of the window. */
  seconds: number;
  /** Latency of the 200 answers. */
  latency: LatencySummary;
  /** This process's CPU seconds during the window. */
  clientCpuSeconds: number;
}

/** What the load process reports once the CSRs are made. */
export interface LoadReady {
  type: "ready";
  /** Seconds spent making key pairs and CSRs. */
  prepareSeconds: number;
  warmupOk: number;
}

const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;

/** A fresh P-256 key and a CSR for `CN=<node>` (no SAN: the server fills the identity in). */
async function makeCsr(node: string): Promise<string> {
  const keys = await crypto.subtle.generateKey(P256, false, ["sign", "verify"]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [node] }],
    keys,
    signingAlgorithm: SIGNING,
  });
  return csr.toString("pem");
}

/** Runs `op(0..count-1)` with at most `concurrency` calls pending. */
async function pool(count: number, concurrency: number, op: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, async () => {
      while (next < count) await op(next++);
    }),
  );
}

async function main(config: LoadConfig): Promise<void> {
  const out = (line: unknown) => console.log(JSON.stringify(line));
  const client = config.caFile
    ? Deno.createHttpClient({ caCerts: [await Deno.readTextFile(config.caFile)] })
    : undefined;
  const endpoint = `${config.url}/v1/ca/enrol`;

  const started = performance.now();
  const warmNodes = Array.from({ length: config.warmup }, (_, i) => `${config.prefix}warm-${i}`);
  const nodes = Array.from({ length: config.count }, (_, i) => `${config.prefix}${i}`);
  const warmBodies: string[] = new Array(warmNodes.length);
  const bodies: string[] = new Array(nodes.length);
  const body = async (token: string, node: string) =>
    JSON.stringify({ token, csr: await makeCsr(node), node });
  // WebCrypto keygen and signing run on a thread pool: a few at once use both cores.
  await pool(warmNodes.length, 8, async (i) => {
    warmBodies[i] = await body(config.warmupToken, warmNodes[i]!);
  });
  await pool(nodes.length, 8, async (i) => {
    bodies[i] = await body(config.token, nodes[i]!);
  });
  const prepareSeconds = (performance.now() - started) / 1000;

  const latencies = new Float64Array(config.count);
  const failures: Record<string, number> = {};
  let firstFailure: string | null = null;
  let ok = 0;
  let checked = false;
  const enrol = async (payload: string, node: string, measured: boolean) => {
    const t0 = performance.now();
    let res: Response;
    try {
      res = await fetch(endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: payload,
        ...(client ? { client } : {}),
      });
    } catch (error) {
      failures.network = (failures.network ?? 0) + 1;
      firstFailure ??= `network: ${(error as Error).message}`;
      return;
    }
    const text = await res.text();
    const ms = performance.now() - t0;
    if (res.status !== 200) {
      failures[res.status] = (failures[res.status] ?? 0) + 1;
      firstFailure ??= `${res.status}: ${text.slice(0, 300)}`;
      return;
    }
    const answer = JSON.parse(text) as { node?: string; certificate?: string };
    if (answer.node !== node || !answer.certificate?.startsWith("-----BEGIN CERTIFICATE-----")) {
      failures.malformed = (failures.malformed ?? 0) + 1;
      firstFailure ??= `malformed 200: ${text.slice(0, 300)}`;
      return;
    }
    if (!checked) {
      // Once per run: the leaf really is for this node.
      checked = true;
      const leaf = new x509.X509Certificate(
        answer.certificate.split("-----END CERTIFICATE-----")[0] +
          "-----END CERTIFICATE-----",
      );
      if (leaf.subjectName.getField("CN")[0] !== node) {
        failures.wrongLeaf = (failures.wrongLeaf ?? 0) + 1;
        firstFailure ??= `leaf for ${leaf.subject}, not ${node}`;
        return;
      }
    }
    if (measured) latencies[ok] = ms;
    ok++;
  };

  await pool(
    warmNodes.length,
    config.concurrency,
    (i) => enrol(warmBodies[i]!, warmNodes[i]!, false),
  );
  const warmupOk = ok;
  ok = 0;
  if (warmupOk !== warmNodes.length) {
    throw new Error(`Warm-up failed: ${warmupOk} of ${warmNodes.length} enrolled; ${firstFailure}`);
  }
  out({ type: "ready", prepareSeconds, warmupOk } satisfies LoadReady);

  // Wait for the parent's go (any line on stdin).
  const reader = Deno.stdin.readable.getReader();
  await reader.read();
  reader.releaseLock();

  const cpu0 = processCpuSeconds("self") ?? 0;
  const t0 = performance.now();
  await pool(nodes.length, config.concurrency, (i) => enrol(bodies[i]!, nodes[i]!, true));
  const seconds = (performance.now() - t0) / 1000;
  const clientCpuSeconds = (processCpuSeconds("self") ?? 0) - cpu0;
  client?.close();
  out(
    {
      type: "result",
      ok,
      errors: config.count - ok,
      failures,
      firstFailure,
      seconds,
      latency: summarize(latencies.subarray(0, ok)),
      clientCpuSeconds,
    } satisfies LoadResult,
  );
}

if (import.meta.main) {
  const arg = Deno.args[0];
  if (!arg) {
    console.error("usage: ca_load.ts '<LoadConfig JSON>' (started by scripts/bench/ca.ts)");
    Deno.exit(2);
  }
  await main(JSON.parse(arg) as LoadConfig);
}
