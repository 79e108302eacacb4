import { markdownTable, parseCaBenchArgs, pct, summarize, thousands } from "./ca_report.ts";

function assertEquals(actual: unknown, expected: unknown): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`expected ${e}, got ${a}`);
}

function assertThrows(fn: () => unknown, includes: string): void {
  try {
    fn();
  } catch (error) {
    if (!(error as Error).message.includes(includes)) {
      throw new Error(`error "${(error as Error).message}" does not mention "${includes}"`);
    }
    return;
  }
  throw new Error("expected an error");
}

Deno.test("parseCaBenchArgs: defaults, --quick, and explicit values", () => {
  const full = parseCaBenchArgs([]);
  assertEquals([full.count, full.tlsCount, full.concurrency, full.rounds], [10_000, 1_000, 32, 3]);
  const quick = parseCaBenchArgs(["--quick"]);
  assertEquals([quick.count, quick.tlsCount, quick.rounds], [500, 100, 1]);
  const custom = parseCaBenchArgs(["--count", "2000", "--sweep", "8, 64"]);
  assertEquals([custom.count, custom.sweep], [2000, [8, 64]]);
});

Deno.test("parseCaBenchArgs: refuses what one join token cannot cover, and bad numbers", () => {
  assertThrows(() => parseCaBenchArgs(["--count", "10001"]), "at most 10000");
  assertThrows(() => parseCaBenchArgs(["--concurrency", "0"]), "--concurrency");
  assertThrows(() => parseCaBenchArgs(["--count", "1.5"]), "--count");
  assertThrows(() => parseCaBenchArgs(["--bogus"]), "bogus");
});

Deno.test("summarize: nearest-rank percentiles over unsorted values", () => {
  const values = Float64Array.from({ length: 100 }, (_, i) => 100 - i);
  assertEquals(summarize(values), { count: 100, p50: 50, p90: 90, p99: 99, max: 100 });
  const one = summarize(Float64Array.of(7));
  assertEquals([one.p50, one.p99, one.max], [7, 7, 7]);
});

Deno.test("formatting helpers", () => {
  assertEquals(thousands(12345.6), "12,346");
  assertEquals(pct(0.274), "27%");
  assertEquals(markdownTable(["a", "b"], [["1", "2"]]), "| a | b |\n| --- | --- |\n| 1 | 2 |");
});
