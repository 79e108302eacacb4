import assert from "node:assert/strict";
import { MAX_RE2_PROGRAM_SIZE, re2ProgramSizeBound } from "./re2_program_size.ts";
import { re2Problem } from "./re2.ts";

/**
 * `RE2::ProgramSize()` of each pattern, measured with RE2 2022-06-01 (Debian's
 * libre2-9) through `re2::RE2(pattern, re2::RE2::Quiet).ProgramSize()`, as
 * Envoy's `CompiledGoogleReMatcher` builds it (`source/common/common/regex.cc`).
 */
const MEASURED: readonly [string, number][] = [
  // Loops inside repeats and alternations cost RE2 more than one instruction each.
  ["(a+|日+)", 16],
  ["(?:-+){0,5}", 23],
  ["(?:(?:/+){0,5}){0,5}", 103],
  ["(\\.+|日+){0,5}", 69],
  ["(?:(\\d+|\\d+)+){0,5}", 68],
  ["/item/[0-9]{1,100}", 209],
  ["[a-z]{120}", 124],
  [".", 12],
  ["\\p{L}", 1197],
  ["[^a]", 12],
  ["\\w", 7],
  ["\\s", 7],
  ["\\d", 5],
  ["\\D", 12],
  ["a", 5],
  ["é", 6],
  ["(?i:a)", 5],
  ["(?i:é)", 7],
  ["\\p{L}{2}", 2390],
  ["a|b", 5],
  ["(a)", 7],
  ["(?:a)", 5],
  ["^a$", 4],
  [".*", 12],
  ["a+", 6],
  ["a?", 6],
  ["\\P{L}", 1201],
  ["\\p{Any}", 11],
  ["\\pN", 237],
  ["[\\p{Lu}_]", 795],
  ["[\\x{80}-\\x{10FFFF}]", 10],
  ["[^\\n]", 12],
  ["[a-z0-9_.-]", 8],
  ["(?i:k)", 8],
  ["(?i:[a-z])", 10],
  ["[^a-z]", 12],
  ["[é-ř]", 10],
  ["[\\x{800}-\\x{FFFF}]", 9],
  ["[\\x{10000}-\\x{10FFFF}]", 12],
  ["[^/]+", 13],
  ["a{2,5}", 12],
  ["a{3,}", 8],
  ["(a|bc|def)", 12],
  ["x{0,3}", 10],
  ["^/api/v[0-9]+/.*$", 15],
  ["(?i:chrome|firefox)", 17],
  ["(?P<ver>v[0-9])", 8],
  ["\\p{L}+\\P{Nd}\\p{Any}", 1470],
  ["\\x41\\0\\d\\w\\s\\b\\B", 15],
  ["\\.\\*\\/", 7],
  ["(a{10}){100}", 1204],
  ["(a{2}|b{999})c*", 1008],
  ["a{0}(b{500}){2}", 1008],
  ["x*?y+?z??", 10],
  ["[^\\p{L}a]", 1201],
  ["(?i:[^a-z])", 29],
  ["(?i:\\p{Lu})", 328],
  ["[\\W]", 15],
  ["\\S+", 15],
  ["[日本語]+", 13],
  ["日本", 10],
  ["[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}", 20],
  ["[^?]*\\?(?:[^&]*&)*foo(?:=[^&]*)?(?:&.*)?", 48],
  ["GET|POST|PUT", 13],
  ["(?i:abc){1000}", 3004],
  [".{1000}", 8004],
  ["\\p{L}{1,30}", 35823],
];

// Also checked against 24,000 random patterns of these constructs with the same RE2: never below.
Deno.test("re2ProgramSizeBound() is never below RE2's own program size", () => {
  for (const [pattern, size] of MEASURED) {
    const bound = re2ProgramSizeBound(pattern);
    assert.ok(bound >= size, `${pattern}: bound ${bound} < measured ${size}`);
  }
});

Deno.test("re2ProgramSizeBound() is exact for literals and ASCII classes under repeats", () => {
  // The two patterns of issue 17: Envoy's default limit of 100 refused both.
  assert.equal(re2ProgramSizeBound("/item/[0-9]{1,100}"), 209);
  assert.equal(re2ProgramSizeBound("a{2,5}"), 12);
  assert.equal(re2ProgramSizeBound("(a{10}){100}"), 1204);
  assert.equal(re2ProgramSizeBound("x{0,3}"), 10);
});

Deno.test("re2ProgramSizeBound() stays within twice the real size outside Unicode corner cases", () => {
  // Folded properties, explicit non-ASCII ranges and characters: a few times too many.
  const unicode = (p: string) => /\(\?i:\\p|\\x\{[18]/.test(p) || [...p].some((c) => c > "\x7f");
  for (const [pattern, size] of MEASURED) {
    if (unicode(pattern)) continue;
    const bound = re2ProgramSizeBound(pattern);
    assert.ok(bound <= 2 * size, `${pattern}: bound ${bound} > 2 × ${size}`);
  }
});

Deno.test("re2Problem() refuses a regex whose RE2 program is over the sidecars' limit", () => {
  // 35,823 measured: Envoy refuses it even with the bootstrap's 32768.
  const pattern = "\\p{L}{1,30}";
  assert.equal(
    re2Problem(pattern),
    `Invalid regex "${pattern}": its RE2 program may take ${
      re2ProgramSizeBound(pattern)
    } instructions, over Envoy's limit of ${MAX_RE2_PROGRAM_SIZE}: use smaller repeat counts or narrower classes`,
  );
  // What Envoy's default limit of 100 refused now fits.
  assert.equal(re2Problem("[a-z]{120}"), undefined);
  assert.equal(re2Problem(".{1000}"), undefined);
});
