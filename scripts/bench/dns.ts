/**
 * The DNS benchmark (issue 12): 10,000 queries a second from a separate
 * process to the agent's DNS server, p99 ≤ 5 ms. The server runs in its
 * own process (`dns_server.ts`), answering A queries for 100 services of 5
 * instances each; this process sends the queries over UDP at a fixed rate
 * (open loop: a slow answer does not slow the sending) and times each
 * answer. The reference, measured in the same run with the same load, is a
 * UDP echo server on the same runtime sockets: what the sockets alone cost.
 *
 *   deno task bench --only dns [--rate N] [--duration SECONDS] [--quick]
 */
// @ts-types="@types/dns-packet"
import packet from "dns-packet";
import { Histogram } from "./histogram.ts";
import { markdownTable, ms, thousands } from "./report.ts";
import { SERVICES } from "./dns_server.ts";

/** The target: this rate held with this p99 and no query lost. */
export const DNS_TARGET = { rate: 10_000, p99Ms: 5 } as const;
/** A query unanswered after this long counts as lost. */
const LOST_MS = 1_000;

interface Figures {
  server: string;
  sent: number;
  answered: number;
  lost: number;
  seconds: number;
  histogram: Histogram;
}

function parse(args: string[]): { rate: number; seconds: number } | null {
  let rate: number = DNS_TARGET.rate;
  let seconds = 10;
  for (let i = 0; i < args.length; i += 2) {
    if (args[i] === "--quick") {
      seconds = 3;
      i--;
      continue;
    }
    const value = Number(args[i + 1]);
    if (!Number.isFinite(value) || value <= 0) return null;
    if (args[i] === "--rate") rate = value;
    else if (args[i] === "--duration") seconds = value;
    else return null;
  }
  return { rate, seconds };
}

async function startServer(
  mode: "dns" | "echo",
): Promise<{ port: number; child: Deno.ChildProcess }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./dns_server.ts", import.meta.url).pathname, mode],
    stdout: "piped",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`The ${mode} server exited before listening`);
    text += value;
  }
  reader.releaseLock();
  return { port: JSON.parse(text.split("\n")[0]!).port, child };
}

/** Sends `rate` queries a second for `seconds` to `port` and times the answers. */
async function load(server: string, port: number, rate: number, seconds: number): Promise<Figures> {
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const target: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  const sentAt = new Float64Array(65536).fill(-1);
  const histogram = new Histogram();
  // One buffer for every answer: the runtime's default is a new 64 KB buffer per datagram,
  // whose garbage collection paused this process long enough to lose answers.
  const buffer = new Uint8Array(65_507);
  const receiving = (async () => {
    for (;;) {
      const [m] = await socket.receive(buffer);
      const id = (m[0]! << 8) | m[1]!;
      const at = sentAt[id]!;
      if (at < 0) continue;
      histogram.record(performance.now() - at);
      sentAt[id] = -1;
    }
  })().catch(() => {});
  const queries = Array.from({ length: SERVICES }, (_, s) =>
    new Uint8Array(packet.encode({
      type: "query",
      id: 0,
      flags: packet.RECURSION_DESIRED,
      questions: [{ type: "A", name: `svc${s}.default.svc.ironmesh` }],
    })));
  const total = Math.round(rate * seconds);
  let sent = 0;
  let lost = 0;
  const start = performance.now();
  while (sent < total) {
    const due = Math.min(total, Math.floor((performance.now() - start) * rate / 1000));
    for (; sent < due; sent++) {
      const id = sent & 0xffff;
      // An ID still waiting since 65,536 queries ago was lost.
      if (sentAt[id]! >= 0) lost++;
      const query = queries[sent % queries.length]!.slice();
      query[0] = id >> 8;
      query[1] = id & 0xff;
      sentAt[id] = performance.now();
      socket.send(query, target).catch(() => {});
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const elapsed = (performance.now() - start) / 1000;
  await new Promise((r) => setTimeout(r, LOST_MS));
  for (const at of sentAt) if (at >= 0) lost++;
  socket.close();
  await receiving;
  return { server, sent, answered: histogram.count, lost, seconds: elapsed, histogram };
}

const options = parse(Deno.args);
if (options === null) {
  console.error("Usage: deno task bench --only dns [--rate N] [--duration SECONDS] [--quick]");
  Deno.exit(2);
}
const figures: Figures[] = [];
for (const mode of ["echo", "dns"] as const) {
  const { port, child } = await startServer(mode);
  // A short warm-up (the JIT, the answer cache), not counted.
  await load(mode, port, options.rate, 1);
  figures.push(await load(mode, port, options.rate, options.seconds));
  child.kill("SIGTERM");
  await child.status;
}
console.log(markdownTable(
  ["server", "sent/s", "answered", "lost", "p50", "p99", "max"],
  figures.map((f) => [
    f.server === "dns" ? "agent DNS" : "UDP echo (reference)",
    thousands(Math.round(f.sent / f.seconds)),
    thousands(f.answered),
    thousands(f.lost),
    ms(f.histogram.quantile(0.5)),
    ms(f.histogram.quantile(0.99)),
    ms(f.histogram.maxMs),
  ]),
));
const dns = figures.find((f) => f.server === "dns")!;
const pass = dns.lost === 0 && dns.histogram.quantile(0.99) <= DNS_TARGET.p99Ms &&
  dns.sent / dns.seconds >= options.rate * 0.99;
console.log(
  `${pass ? "PASS" : "FAIL"}: ${thousands(options.rate)} queries/s, p99 ${
    ms(dns.histogram.quantile(0.99))
  } (target ≤ ${DNS_TARGET.p99Ms} ms), ${dns.lost} lost`,
);
Deno.exit(pass ? 0 : 1);
