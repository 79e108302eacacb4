/**
 * The identity benchmark: how fast the CA signs in-process, and how fast
 * hosts enrol end to end through `POST /v1/ca/enrol` on the real server.
 *
 *   deno run -A scripts/bench/ca.ts [--quick] [--count N] [--concurrency N] …
 *
 * Steps, in one run:
 *   1. In this process: raw WebCrypto ECDSA P-256 sign (1 and 16 in flight)
 *      and verify, then `CertificateAuthority.issue` (1 and 16 in flight, and
 *      ), on a CA in a temp dir.
 *   2. The server (`cmd/main.ts server`) as its own process; one join token
 *      per run allowing every enrolment of that run.
 *   3. A separate load process (`ca_load.ts`) per run makes every key pair
 *      and CSR first, warms the server up, then enrols the hosts with a
 *      bounded number in flight; the server's utime+stime is read from
 *      `/proc` around exactly that window.
 *   4. SIGTERM to the server (its exit code must be 0), temp dirs removed.
 *
 * Progress goes to stderr, the markdown report to stdout. Exits 0 when the
 * run completed, whether or not the targets were met; 1 when it could not
 * run, an enrolment failed, or the server did not exit cleanly.
 */
import { fileURLToPath } from "node:url";
import { CertificateAuthority } from "../../ca/authority.ts";
import { measureIssuance, measureRawSign, type Rate } from "../../ca/measure.ts";
import { decodePem } from "../../ca/pem.ts";
import { systemClock } from "../../core/clock.ts";
import type { LoadConfig, LoadReady, LoadResult } from "./ca_load.ts";
import { measureOpenSsl, type OpenSslRates, routeEcdsaToOpenSsl } from "./ca_openssl.ts";
import {
  CA_USAGE,
  type CaBenchOptions,
  markdownTable,
  ms,
  parseCaBenchArgs,
  pct,
  thousands,
} from "./ca_report.ts";
import {
  type CaServer,
  machineBusySeconds,
  machineLoad,
  processCpuSeconds,
  startCaServer,
  threadCpuSeconds,
} from "./ca_server.ts";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const LOAD_SCRIPT = fileURLToPath(new URL("./ca_load.ts", import.meta.url));
/** The targets of the identity issue. */
const TARGET_RATIO = 0.7;
const TARGET_HOSTS = 10_000;
const TARGET_SERVER_SECONDS = 10;

function progress(message: string): void {
  console.error(`bench-ca: ${message}`);
}

/** One in-process measurement: the median of its rounds. */
interface OpRate {
  label: string;
  inFlight: string;
  /** Per round. */
  perSecond: number[];
  /** Process CPU (all threads) per operation, per round, in ms. */
  cpuMs: number[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Runs `op` `count` times with `concurrency` pending, after 100 untimed calls. */
async function timedOps(
  count: number,
  concurrency: number,
  op: () => Promise<unknown>,
): Promise<Rate> {
  const run = async (n: number) => {
    let next = 0;
    const start = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next++ < n) await op();
    }));
    return (performance.now() - start) / 1000;
  };
  await run(100);
  const seconds = await run(count);
  return { count, seconds, perSecond: count / seconds };
}

/** A WebCrypto verify of a certificate-sized message, ECDSA P-256 or Ed25519. */
async function verifier(algorithm: "ECDSA" | "Ed25519"): Promise<() => Promise<boolean>> {
  const data = crypto.getRandomValues(new Uint8Array(420));
  const keys = algorithm === "ECDSA"
    ? await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, [
      "sign",
      "verify",
    ])
    : await crypto.subtle.generateKey({ name: "Ed25519" }, false, [
      "sign",
      "verify",
    ]) as CryptoKeyPair;
  const params = algorithm === "ECDSA" ? { name: "ECDSA", hash: "SHA-256" } : { name: "Ed25519" };
  const signature = await crypto.subtle.sign(params, keys.privateKey, data);
  return () => crypto.subtle.verify(params, keys.publicKey, signature, data);
}

interface InProcess {
  ops: OpRate[];
  /** Median per-second rate of raw WebCrypto sign with 16 in flight: the reference. */
  rawSign16: number;
  /** Median CPU ms of one raw sign, one P-256 verify, one Ed25519 verify (16 in flight). */
  signCpuMs: number;
  verifyCpuMs: number;
  ed25519CpuMs: number;
  issueCpuMs: number;
  /** The same with ECDSA on OpenSSL, when libcrypto is there. */
  issueOpenSslCpuMs: number | null;
  openssl: OpenSslRates | null;
}

async function measureInProcess(options: CaBenchOptions): Promise<InProcess> {
  const count = options.inProcessCount;
  const rounds = options.rounds;
  progress(`in-process: raw sign/verify and issuance, ${count} each, ${rounds} round(s)`);
  const dir = await Deno.makeTempDir({ prefix: "ironmesh-bench-ca-" });
  const ops = new Map<string, OpRate>();
  const cas: CertificateAuthority[] = [];
  try {
    const ca = await CertificateAuthority.open({
      dir: `${dir}/ca`,
      trustDomain: "bench.local",
      clock: systemClock,
    });
    cas.push(ca);
    const p256Verify = await verifier("ECDSA");
    const edVerify = await verifier("Ed25519");
    /** [key, label, in flight, calls counted in the CPU window, run] */
    const plan: [string, string, string, number, () => Promise<Rate>][] = [
      [
        "sign1",
        "Raw ECDSA P-256 sign (WebCrypto)",
        "1",
        count + 100,
        () => measureRawSign({ count, concurrency: 1 }),
      ],
      [
        "sign16",
        "Raw ECDSA P-256 sign (WebCrypto)",
        "16",
        count + 100,
        () => measureRawSign({ count, concurrency: 16 }),
      ],
      [
        "verify16",
        "Raw ECDSA P-256 verify (WebCrypto)",
        "16",
        count + 100,
        () => timedOps(count, 16, p256Verify),
      ],
      [
        "ed16",
        "Raw Ed25519 verify (WebCrypto; the join token)",
        "16",
        count + 100,
        () => timedOps(count, 16, edVerify),
      ],
      [
        "issue1",
        "`CertificateAuthority.issue`",
        "1",
        count + 100,
        () => measureIssuance(ca, { count, concurrency: 1 }),
      ],
      [
        "issue16",
        "`CertificateAuthority.issue`",
        "16",
        count + 100,
        () => measureIssuance(ca, { count, concurrency: 16 }),
      ],
    ];
    for (let round = 0; round < rounds; round++) {
      for (const [key, label, inFlight, calls, run] of plan) {
        const cpu0 = processCpuSeconds("self") ?? NaN;
        const rate = await run();
        const cpuMs = ((processCpuSeconds("self") ?? NaN) - cpu0) * 1000 / calls;
        const entry = ops.get(key) ?? { label, inFlight, perSecond: [], cpuMs: [] };
        entry.perSecond.push(rate.perSecond);
        entry.cpuMs.push(cpuMs);
        ops.set(key, entry);
      }
    }
    // The idea that would lift it: the same pipeline with ECDSA on OpenSSL (FFI).
    const keyPem = await Deno.readTextFile(`${dir}/ca/gen-1/intermediate.key`);
    const restore = routeEcdsaToOpenSsl(ca.signer().key, decodePem(keyPem)[0]!.der);
    if (restore) {
      try {
        const entry: OpRate = {
          label: "`CertificateAuthority.issue`, sign + CSR verify on OpenSSL (FFI, main thread)",
          inFlight: "16",
          perSecond: [],
          cpuMs: [],
        };
        for (let round = 0; round < rounds; round++) {
          const cpu0 = processCpuSeconds("self") ?? NaN;
          const rate = await measureIssuance(ca, { count, concurrency: 16 });
          entry.cpuMs.push(((processCpuSeconds("self") ?? NaN) - cpu0) * 1000 / (count + 100));
          entry.perSecond.push(rate.perSecond);
        }
        ops.set("issueSsl", entry);
      } finally {
        restore();
      }
    }
    const openssl = await measureOpenSsl(count * 4);
    const cpu = (key: string) => median(ops.get(key)!.cpuMs);
    return {
      ops: [...ops.values()],
      rawSign16: median(ops.get("sign16")!.perSecond),
      signCpuMs: cpu("sign16"),
      verifyCpuMs: cpu("verify16"),
      ed25519CpuMs: cpu("ed16"),
      issueCpuMs: cpu("issue16"),
      issueOpenSslCpuMs: ops.has("issueSsl") ? cpu("issueSsl") : null,
      openssl,
    };
  } finally {
    for (const ca of cas) ca.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function createJoinToken(server: CaServer, uses: number, description: string) {
  const res = await fetch(`http://${server.http}/v1/tokens`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${server.adminToken}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ kind: "join", serviceAccount: "bench", uses, ttl: "1h", description }),
  });
  const text = await res.text();
  if (res.status !== 201 && res.status !== 200) {
    throw new Error(`POST /v1/tokens answered ${res.status}: ${text}`);
  }
  return (JSON.parse(text) as { token: string }).token;
}

/** One end-to-end window as measured. */
interface EndToEnd {
  label: string;
  transport: "http" | "https";
  concurrency: number;
  hosts: number;
  result: LoadResult;
  prepareSeconds: number;
  serverCpuSeconds: number;
  /** Of which on the server's main (JavaScript) thread. */
  serverMainCpuSeconds: number;
  machineBusySeconds: number;
}

/** Reads newline-separated JSON objects from a child's stdout. */
async function* jsonLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line.startsWith("{")) yield JSON.parse(line);
    }
  }
}

async function runLoad(
  server: CaServer,
  options: CaBenchOptions,
  run: {
    label: string;
    transport: "http" | "https";
    hosts: number;
    concurrency: number;
    prefix: string;
    caFile?: string;
  },
): Promise<EndToEnd> {
  const token = await createJoinToken(server, run.hosts, run.label);
  const warmupToken = await createJoinToken(server, options.warmup, `${run.label} warm-up`);
  const config: LoadConfig = {
    url: run.transport === "http" ? `http://${server.http}` : `https://${server.https}`,
    token,
    warmupToken,
    count: run.hosts,
    warmup: options.warmup,
    concurrency: run.concurrency,
    prefix: run.prefix,
    ...(run.caFile ? { caFile: run.caFile } : {}),
  };
  progress(`${run.label}: making ${run.hosts + options.warmup} key pairs and CSRs`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", LOAD_SCRIPT, JSON.stringify(config)],
    cwd: REPO_ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = jsonLines(child.stdout);
  try {
    const ready = (await lines.next()).value as LoadReady | undefined;
    if (ready?.type !== "ready") throw new Error(`${run.label}: the load process did not start`);
    progress(
      `${run.label}: CSRs made in ${ready.prepareSeconds.toFixed(1)} s, ` +
        `${ready.warmupOk} warm-up enrolments; measuring ${run.hosts} at ${run.concurrency} in flight`,
    );
    const server0 = threadCpuSeconds(server.pid);
    const machine0 = machineBusySeconds() ?? NaN;
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
    const result = (await lines.next()).value as LoadResult | undefined;
    const server1 = threadCpuSeconds(server.pid);
    const machine1 = machineBusySeconds() ?? NaN;
    if (result?.type !== "result") throw new Error(`${run.label}: the load process gave no result`);
    const status = await child.status;
    if (!status.success) throw new Error(`${run.label}: the load process exited ${status.code}`);
    progress(
      `${run.label}: ${result.ok} enrolled, ${result.errors} failed in ${
        result.seconds.toFixed(2)
      } s`,
    );
    return {
      label: run.label,
      transport: run.transport,
      concurrency: run.concurrency,
      hosts: run.hosts,
      result,
      prepareSeconds: ready.prepareSeconds,
      serverCpuSeconds: (server1?.total ?? NaN) - (server0?.total ?? NaN),
      serverMainCpuSeconds: (server1?.main ?? NaN) - (server0?.main ?? NaN),
      machineBusySeconds: machine1 - machine0,
    };
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    throw error;
  }
}

function report(
  options: CaBenchOptions,
  inProc: InProcess,
  runs: EndToEnd[],
  loadBefore: string,
  loadAfter: string,
  exitCode: number,
): string {
  const raw16 = inProc.rawSign16;
  const range = (v: number[]) =>
    v.length < 2 ? "" : ` (${thousands(Math.min(...v))}–${thousands(Math.max(...v))})`;
  const inRows = inProc.ops.map((op) => [
    op.label,
    op.inFlight,
    thousands(median(op.perSecond)) + range(op.perSecond),
    median(op.cpuMs).toFixed(3),
    pct(median(op.perSecond) / raw16),
  ]);
  if (inProc.openssl) {
    const o = inProc.openssl;
    inRows.push(
      [
        `Raw ECDSA P-256 sign, ${o.library} via FFI`,
        "1 (sync)",
        thousands(o.signPerSecond),
        (1000 / o.signPerSecond).toFixed(3),
        pct(o.signPerSecond / raw16),
      ],
      [
        `Raw ECDSA P-256 verify incl. SPKI parse (as for a CSR), ${o.library} via FFI`,
        "1 (sync)",
        thousands(o.verifyPerSecond),
        (1000 / o.verifyPerSecond).toFixed(3),
        "–",
      ],
    );
  }
  const e2eRows = runs.map((r) => {
    const perSecond = r.result.ok / r.result.seconds;
    const cpuMs = r.serverCpuSeconds * 1000 / Math.max(1, r.result.ok);
    const other = r.machineBusySeconds - r.serverCpuSeconds - r.result.clientCpuSeconds;
    return [
      r.label,
      String(r.concurrency),
      `${thousands(r.result.ok)} / ${thousands(r.result.errors)}`,
      r.result.seconds.toFixed(2),
      thousands(perSecond),
      pct(perSecond / raw16),
      ms(r.result.latency.p50),
      ms(r.result.latency.p99),
      `${r.serverCpuSeconds.toFixed(2)} (${r.serverMainCpuSeconds.toFixed(2)} main)`,
      cpuMs.toFixed(2),
      r.result.clientCpuSeconds.toFixed(2),
      Math.max(0, other).toFixed(2),
    ];
  });
  const main = runs[0]!;
  const mainRate = main.result.ok / main.result.seconds;
  const ratio = mainRate / raw16;
  const cpuPerEnrol = main.serverCpuSeconds * 1000 / Math.max(1, main.result.ok);
  const cpuFor10k = cpuPerEnrol * TARGET_HOSTS / 1000;
  const wallFor10k = TARGET_HOSTS / mainRate;
  const scaled = main.hosts === TARGET_HOSTS ? "" : ` (scaled from ${thousands(main.hosts)})`;
  const verdict = (ok: boolean) => (ok ? "**PASS**" : "**MISS**");
  const floor = inProc.signCpuMs + inProc.verifyCpuMs + inProc.ed25519CpuMs;
  return [
    `## CA benchmark`,
    ``,
    `Command: \`deno run -A scripts/bench/ca.ts${
      Deno.args.length ? " " + Deno.args.join(" ") : ""
    }\`  `,
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores shared by server, load generator and other sessions.  `,
    `Load before: \`${loadBefore}\`  `,
    `Load after: \`${loadAfter}\``,
    ``,
    `### In-process (the bench process, before the server starts)`,
    ``,
    `Median of ${options.rounds} round(s) of ${
      thousands(options.inProcessCount)
    } operations (range in brackets); ` +
    `CPU = this process's utime+stime, all threads, per operation.`,
    ``,
    markdownTable(
      ["Operation", "In flight", "Per second", "CPU ms/op", "vs raw sign (16)"],
      inRows,
    ),
    ``,
    `### End to end: \`POST /v1/ca/enrol\` on the real server`,
    ``,
    `Each run: one join token for the N measured hosts; N fresh P-256 keys and CSRs made by the load process ` +
    `before the window; ${options.warmup} warm-up enrolments (own token) not counted. ` +
    `Server CPU = utime+stime of the server process over the window (main = its JavaScript thread; ` +
    `the rest is mostly the blocking pool WebCrypto runs on). "Other" = machine busy time minus server and ` +
    `load generator, i.e. other processes on the box.`,
    ``,
    markdownTable(
      [
        "Run",
        "In flight",
        "OK / errors",
        "Wall s",
        "Enrolments/s",
        "vs raw sign (16)",
        "p50 ms",
        "p99 ms",
        "Server CPU s",
        "Server CPU ms/enrol",
        "Load gen CPU s",
        "Other CPU s",
      ],
      e2eRows,
    ),
    ``,
    `Crypto floor per enrolment (in-process CPU, 16 in flight): P-256 sign ${
      inProc.signCpuMs.toFixed(3)
    } + ` +
    `P-256 verify ${inProc.verifyCpuMs.toFixed(3)} + Ed25519 verify ${
      inProc.ed25519CpuMs.toFixed(3)
    } = ` +
    `**${floor.toFixed(2)} ms**; \`issue\` alone ${inProc.issueCpuMs.toFixed(2)} ms; ` +
    `server ${cpuPerEnrol.toFixed(2)} ms per enrolment.`,
    ``,
    `### Targets (first run)`,
    ``,
    markdownTable(["Target", "Measured", "Verdict"], [
      [
        `Issuance through the API ≥ ${
          pct(TARGET_RATIO)
        } of raw in-process sign rate (16 in flight)`,
        `${thousands(mainRate)} / ${thousands(raw16)} = ${pct(ratio)}`,
        verdict(ratio >= TARGET_RATIO),
      ],
      [
        `… the same in CPU cost: raw sign CPU / server CPU per enrolment`,
        `${inProc.signCpuMs.toFixed(3)} / ${cpuPerEnrol.toFixed(2)} ms = ${
          pct(inProc.signCpuMs / cpuPerEnrol)
        }`,
        verdict(inProc.signCpuMs / cpuPerEnrol >= TARGET_RATIO),
      ],
      [
        `${thousands(TARGET_HOSTS)} hosts in < ${TARGET_SERVER_SECONDS} s of server CPU time`,
        `${cpuFor10k.toFixed(1)} s${scaled}`,
        verdict(cpuFor10k < TARGET_SERVER_SECONDS),
      ],
      [
        `${thousands(TARGET_HOSTS)} hosts in < ${TARGET_SERVER_SECONDS} s of wall-clock time`,
        `${wallFor10k.toFixed(1)} s${scaled}`,
        verdict(wallFor10k < TARGET_SERVER_SECONDS),
      ],
    ]),
    ``,
    `Server exit code after SIGTERM: ${exitCode}`,
    ``,
  ].join("\n");
}

async function main(): Promise<number> {
  let options: CaBenchOptions;
  try {
    options = parseCaBenchArgs(Deno.args);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${CA_USAGE}`);
    return 2;
  }
  const loadBefore = machineLoad();
  progress(`machine: ${loadBefore}`);
  const inProc = await measureInProcess(options);

  const dataDir = await Deno.makeTempDir({ prefix: "ironmesh-bench-ca-server-" });
  const runs: EndToEnd[] = [];
  let exitCode = -1;
  let server: CaServer | undefined;
  try {
    progress("starting the server");
    server = await startCaServer({
      dataDir,
      ...(options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {}),
    });
    const rootsRes = await fetch(`http://${server.http}/v1/ca/roots?format=pem`);
    const rootsPem = await rootsRes.text();
    if (!rootsRes.ok || !rootsPem.includes("BEGIN CERTIFICATE")) {
      throw new Error(`GET /v1/ca/roots?format=pem answered ${rootsRes.status}`);
    }
    const caFile = `${dataDir}/bench-roots.pem`;
    await Deno.writeTextFile(caFile, rootsPem);

    runs.push(
      await runLoad(server, options, {
        label: `HTTP, ${thousands(options.count)} hosts`,
        transport: "http",
        hosts: options.count,
        concurrency: options.concurrency,
        prefix: "bench-",
      }),
    );
    for (const [k, c] of options.sweep.entries()) {
      runs.push(
        await runLoad(server, options, {
          label: `HTTP, ${thousands(options.sweepCount)} hosts`,
          transport: "http",
          hosts: options.sweepCount,
          concurrency: c,
          prefix: `sweep${k}-`,
        }),
      );
    }
    if (options.tlsCount > 0) {
      runs.push(
        await runLoad(server, options, {
          label: `TLS, ${thousands(options.tlsCount)} hosts`,
          transport: "https",
          hosts: options.tlsCount,
          concurrency: options.concurrency,
          prefix: "tls-",
          caFile,
        }),
      );
    }
  } catch (error) {
    console.error(`bench-ca: ${(error as Error).message}`);
    if (server) console.error(`server stderr (tail):\n${server.stderrTail()}`);
    if (server) await server.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    return 1;
  }
  progress("stopping the server (SIGTERM)");
  exitCode = await server.stop();
  if (exitCode !== 0) console.error(`server stderr (tail):\n${server.stderrTail()}`);
  await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  const loadAfter = machineLoad();
  console.log(report(options, inProc, runs, loadBefore, loadAfter, exitCode));
  const failed = runs.some((r) => r.result.errors > 0);
  if (failed) {
    for (const r of runs.filter((r) => r.result.errors > 0)) {
      console.error(
        `bench-ca: ${r.label}: ${
          JSON.stringify(r.result.failures)
        }; first: ${r.result.firstFailure}`,
      );
    }
  }
  return exitCode === 0 && !failed ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
