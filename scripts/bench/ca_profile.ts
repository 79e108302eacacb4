/**
 * Summarizes a V8 `.cpuprofile` of the server (from `ca.ts --cpu-prof DIR`)
 * by what the main thread was doing: each sample goes to the first frame,
 * from the leaf up, that falls in a category (SQLite store, CA DER/PEM code,
 * jose, Hono, zod, Deno's HTTP runtime, …).
 *
 *   deno run -A scripts/bench/ca_profile.ts DIR/CPU.*.cpuprofile
 *
 * The profile samples wall-clock time on the JavaScript thread only. WebCrypto
 * sign and verify show up as native `sign`/`verify` frames although their
 * CPU is spent on the blocking pool (per-thread `/proc` counters show the main
 * thread nearly idle while signing): read those rows as "waiting on the
 * pool", and use `ca.ts`'s CPU columns for what the crypto costs.
 */

interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const CATEGORIES: [string, (f: CallFrame) => boolean][] = [
  ["(idle)", (f) => f.functionName === "(idle)"],
  [
    "WebCrypto sign/verify (waiting on the pool)",
    (f) => (f.functionName === "sign" || f.functionName === "verify") && f.url === "",
  ],
  ["(garbage collector)", (f) => f.functionName === "(garbage collector)"],
  ["SQLite store (store/sqlite*.ts)", (f) => f.url.includes("/store/sqlite")],
  ["jose (JWT verify)", (f) => f.url.includes("/jose")],
  ["zod (request schema)", (f) => f.url.includes("/zod")],
  [
    "CA JavaScript (ca/der, pem, csr, leaf, pipeline)",
    (f) => /\/ca\/(der|pem|csr|leaf|pipeline)\.ts/.test(f.url),
  ],
  [
    "identity service and routes (ca/identity.ts, api/)",
    (f) => /\/(ca\/identity\.ts|api\/)/.test(f.url),
  ],
  ["Hono", (f) => f.url.includes("/hono")],
  ["Deno runtime (HTTP, fetch, crypto glue)", (f) => f.url.startsWith("ext:")],
];

/** Milliseconds per category, largest first. */
export function summarizeProfile(profile: Profile): [string, number][] {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totals = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    let category = "other (startup, timers, …)";
    let id: number | undefined = profile.samples[i];
    search: while (id !== undefined) {
      const frame = nodes.get(id)!.callFrame;
      for (const [name, match] of CATEGORIES) {
        if (match(frame)) {
          category = name;
          break search;
        }
      }
      id = parent.get(id);
    }
    totals.set(category, (totals.get(category) ?? 0) + dt);
  }
  return [...totals].sort((a, b) => b[1] - a[1]);
}

if (import.meta.main) {
  const file = Deno.args[0];
  if (!file) {
    console.error("usage: ca_profile.ts FILE.cpuprofile");
    Deno.exit(2);
  }
  const rows = summarizeProfile(JSON.parse(await Deno.readTextFile(file)) as Profile);
  const busy = rows.filter(([n]) => n !== "(idle)").reduce((a, [, ms]) => a + ms, 0);
  console.log("| Main-thread samples | ms | of non-idle |");
  console.log("| --- | --- | --- |");
  for (const [name, ms] of rows) {
    const share = name === "(idle)" ? "–" : `${(100 * ms / busy).toFixed(1)}%`;
    console.log(`| ${name} | ${ms.toFixed(0)} | ${share} |`);
  }
}
