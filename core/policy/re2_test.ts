import assert from "node:assert/strict";
import { RE2JS } from "re2js";
import { re2Problem } from "./re2.ts";

const ACCEPTED = [
  "",
  "^/api/v[0-9]+/.*$",
  "[(?=]",
  "[\\]a]",
  "a{1000}",
  "(a{10}){100}",
  "(a{2}|b{999})c*",
  "a{0}(b{500}){2}",
  "x*?y+?z??",
  "(?i:chrome|firefox)",
  "(?:a|b)",
  "(?<ver>v[0-9])",
  "\\p{L}+\\P{Nd}\\p{Any}",
  "[\\p{Lu}_]",
  "\\x41\\0\\d\\w\\s\\b\\B",
  "\\.\\*\\/",
];

Deno.test("re2Problem() accepts what RE2 and JavaScript both read alike", () => {
  for (const pattern of ACCEPTED) {
    assert.equal(re2Problem(pattern), undefined, pattern);
    assert.doesNotThrow(() => RE2JS.compile(pattern), pattern);
  }
});

const NAMED: [string, string][] = [
  ["(a)\\1", 'backreferences ("\\1") are not supported by RE2'],
  [
    "(a)\\12",
    '"\\12" means different things to RE2 (an octal escape) and JavaScript (a backreference): write a character as "\\xHH"',
  ],
  ["(a)\\18", 'backreferences ("\\18") are not supported by RE2'],
  ["(?<x>a)\\k<x>", 'backreferences ("\\k<name>") are not supported by RE2'],
  ["a(?=b)", 'lookahead ("(?=") is not supported by RE2'],
  ["a(?!b)", 'lookahead ("(?!") is not supported by RE2'],
  ["(?<=a)b", 'lookbehind ("(?<=") is not supported by RE2'],
  ["(?<!a)b", 'lookbehind ("(?<!") is not supported by RE2'],
  ["(?>a)", 'atomic groups ("(?>") are not supported by RE2'],
  ["a*+", 'possessive quantifiers ("*+") are not supported by RE2: drop the "+"'],
  ["a++", 'possessive quantifiers ("++") are not supported by RE2: drop the "+"'],
  ["a?+", 'possessive quantifiers ("?+") are not supported by RE2: drop the "+"'],
  ["a{2}+", 'possessive quantifiers ("{2}+") are not supported by RE2: drop the "+"'],
  ["a\\Z", '"\\Z" is not supported by RE2: use "$"'],
  [
    "\\u0041",
    '"\\u" escapes are not supported by RE2: write the character itself, or "\\xHH" below 0x100',
  ],
  ["\\cA", 'control escapes ("\\c") are not supported by RE2: use "\\xHH"'],
  ["[\\b]", '"\\b" in a character class is not supported by RE2: use "\\x08"'],
  [
    "\\p{Script=Greek}",
    '"\\p{Script=Greek}" is not supported: use a Unicode general category such as "\\p{L}" or "\\p{Lu}"',
  ],
  [
    "[\\P{ASCII}]",
    '"\\P{ASCII}" is not supported: use a Unicode general category such as "\\p{L}" or "\\p{Lu}"',
  ],
  ["a{1001}", 'repeat count "{1001}" is over RE2\'s limit of 1000'],
  ["a{1,2000}", 'repeat count "{1,2000}" is over RE2\'s limit of 1000'],
  ["(a{100}){11}", "nested repeat counts multiply to 1100, over RE2's limit of 1000"],
  ["((a{10}){10}x){11}", "nested repeat counts multiply to 1100, over RE2's limit of 1000"],
  [
    "(?i)abc",
    'flags for the rest of the pattern ("(?i)") are not supported: use a group, "(?i:...)"',
  ],
  [
    "[]a]",
    '"[]" means different things to RE2 and JavaScript: escape a literal "]" as "\\]"',
  ],
  [
    "[^]",
    '"[^]" means different things to RE2 and JavaScript: escape a literal "]" as "\\]"',
  ],
];

Deno.test("re2Problem() names the RE2 feature a pattern uses", () => {
  for (const [pattern, detail] of NAMED) {
    assert.equal(re2Problem(pattern), `Invalid regex "${pattern}": ${detail}`, pattern);
  }
});

Deno.test("every refusal that blames RE2 is one RE2's own parser makes", () => {
  // The scan names features from what we know of RE2; its parser (re2js) is the whole grammar,
  // so a name that RE2 does not back would refuse patterns Envoy takes.
  const blamed = NAMED.filter(([, detail]) => /by RE2|RE2's limit/.test(detail));
  assert.equal(blamed.length, 20);
  for (const [pattern] of blamed) assert.throws(() => RE2JS.compile(pattern), pattern);
});

Deno.test("re2Problem() refuses what JavaScript reads but RE2's parser does not", () => {
  // Inside a class RE2 reads `[:alpha:]` as a POSIX class, JavaScript as five characters.
  for (const pattern of ["[a[:alpha:]", "x[[:digit:]"]) {
    assert.doesNotThrow(() => new RegExp(pattern, "u"), pattern);
    assert.equal(
      re2Problem(pattern),
      `Invalid regex "${pattern}": RE2 refuses it: missing closing ]: \`${
        pattern.slice(pattern.indexOf("["))
      }\``,
    );
  }
});

Deno.test("re2Problem() reports JavaScript's syntax errors", () => {
  const table: [string, string][] = [
    ["(a", "Unterminated group"],
    ["a)", "Unmatched ')'"],
    ["[a", "Unterminated character class"],
    ["*a", "Nothing to repeat"],
    ["a{2,1}", "numbers out of order in {} quantifier"],
    ["\\", "\\ at end of pattern"],
    ["(?P<n>a)", "Invalid group"],
    ["[\\1]", "Invalid decimal escape"],
    ["\\z", "Invalid escape"],
  ];
  for (const [pattern, detail] of table) {
    assert.equal(re2Problem(pattern), `Invalid regex "${pattern}": ${detail}`, pattern);
  }
});

Deno.test("re2Problem() refuses patterns over 1024 characters", () => {
  assert.equal(re2Problem("a".repeat(1024)), undefined);
  assert.equal(
    re2Problem("a".repeat(1025)),
    "Regex is too long: 1025 characters, at most 1024 are allowed",
  );
});
