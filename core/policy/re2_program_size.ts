/**
 * An upper bound of the RE2 "program size" Envoy measures before it accepts
 * a `safe_regex`. Envoy compiles every regex with RE2 and refuses one whose
 * `RE2::ProgramSize()` exceeds the runtime key
 * `re2.max_program_size.error_level` (Envoy's
 * `source/common/common/regex.cc`, `CompiledGoogleReMatcher`; the key is
 * documented in `api/envoy/type/matcher/v3/regex.proto`). One refused regex
 * NACKs the whole route table or listener that holds it, so we refuse it
 * when it is written.
 *
 * The control plane has no RE2 (no npm binding reports program size), so
 * this counts instructions the way RE2's compiler (`re2/compile.cc`) emits
 * them, rounding every doubt up: a pattern we accept never compiles larger
 * than we say, while one we refuse may have fitted. Measured with RE2
 * 2022-06-01 (`RE2::ProgramSize()`), the bound is exact for literals and
 * ASCII classes under repeats (`/item/[0-9]{1,100}`: 209) and at most about
 * twice the real size for Unicode classes (see the test's table).
 */

/**
 * The limit the sidecar bootstrap sets for `re2.max_program_size.error_level`
 * (Istio's value); Envoy's own default, 100, refuses `[a-z]{100}`.
 */
export const MAX_RE2_PROGRAM_SIZE = 32_768;

/**
 * Every program has a Fail instruction and a Match instruction, and an
 * unanchored one a `.*?` loop over any byte in front (2 more).
 */
const PROGRAM_OVERHEAD = 4;

/**
 * RE2 compiles the Unicode range 80–10FFFF (what `.` and a negated class
 * add) as "a lead byte and continuation bytes": 6 instructions measured,
 * rounded up.
 */
const NON_ASCII_ANY = 8;

/**
 * Instructions of `\p{X}` and `\P{X}` for each name re2.ts lets through,
 * measured with RE2 2022-06-01. Unicode grows a little with each version,
 * so {@link propertyCost} adds a quarter.
 */
const PROPERTY_SIZES: Readonly<Record<string, readonly [number, number]>> = {
  Any: [7, 0],
  C: [70, 104],
  Cc: [4, 15],
  Cf: [51, 98],
  Co: [17, 21],
  Cs: [3, 16],
  L: [1193, 1197],
  Ll: [822, 884],
  Lm: [133, 252],
  Lo: [929, 994],
  Lt: [15, 33],
  Lu: [790, 846],
  M: [551, 736],
  Mc: [309, 429],
  Me: [12, 37],
  Mn: [573, 806],
  N: [233, 472],
  Nd: [86, 265],
  Nl: [31, 64],
  No: [149, 274],
  P: [330, 577],
  Pc: [13, 33],
  Pd: [37, 72],
  Pe: [115, 154],
  Pf: [15, 33],
  Pi: [15, 34],
  Po: [313, 550],
  Ps: [122, 158],
  S: [440, 554],
  Sc: [48, 96],
  Sk: [57, 97],
  Sm: [113, 169],
  So: [364, 435],
  Z: [15, 34],
  Zl: [3, 19],
  Zp: [3, 19],
  Zs: [14, 33],
};

/** The ASCII ranges of RE2's Perl classes `\d`, `\s`, `\w`. */
const PERL_CLASSES: Readonly<Record<string, readonly (readonly [number, number])[]>> = {
  d: [[0x30, 0x39]],
  s: [[0x09, 0x0a], [0x0c, 0x0d], [0x20, 0x20]],
  w: [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]],
};

function propertyCost(name: string, negated: boolean): number {
  const sizes = PROPERTY_SIZES[name];
  // re2.ts refuses other names; count the largest class for one that slips through.
  const size = sizes ? sizes[negated ? 1 : 0] : 1197;
  return Math.ceil(size * 1.25);
}

/** The length of a code point's UTF-8 encoding. */
function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/**
 * Instructions of a range of non-ASCII code points: one byte range per
 * byte of each UTF-8 sequence the range splits into, and one alternation
 * per sequence, with no sharing of suffixes (RE2 shares them, so it needs
 * fewer). A range splits at each change of encoded length, and within one
 * length into at most a partial, a whole and a partial run per byte.
 */
function nonAsciiRangeCost(lo: number, hi: number): number {
  let cost = 0;
  for (const [start, end] of [[0x80, 0x7ff], [0x800, 0xffff], [0x10000, 0x10ffff]] as const) {
    const a = Math.max(lo, start);
    const b = Math.min(hi, end);
    if (a > b) continue;
    const length = utf8Length(a);
    // A range of one length splits into at most 2 (length - 1) + 1 sequences; the
    // three-byte length may split twice more around the surrogates (D800–DFFF).
    const sequences = 2 * (length - 1) + 1 + (length === 3 ? 2 : 0);
    cost += sequences * (length + 1);
  }
  return cost;
}

/** A class's parts as the cost model sees them. */
interface ClassParts {
  /** Ranges below 0x80. */
  ascii: [number, number][];
  /** Instructions of the non-ASCII ranges and properties named. */
  nonAscii: number;
  /** The class names `\D`, `\W`, `\S`, or a negated property: it reaches past ASCII. */
  wide: boolean;
}

function addRange(parts: ClassParts, lo: number, hi: number): void {
  if (lo < 0x80) parts.ascii.push([lo, Math.min(hi, 0x7f)]);
  if (hi >= 0x80) parts.nonAscii += nonAsciiRangeCost(Math.max(lo, 0x80), hi);
}

/** Merged, sorted ASCII ranges. */
function mergeRanges(ranges: readonly [number, number][]): [number, number][] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [lo, hi] of sorted) {
    const last = out.at(-1);
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

/** The ASCII ranges not in `ranges`. */
function complementAscii(ranges: readonly [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  let next = 0;
  for (const [lo, hi] of mergeRanges(ranges)) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= 0x7f) out.push([next, 0x7f]);
  return out;
}

/**
 * Instructions of a character class: a byte range per ASCII range, the
 * non-ASCII part as counted, an alternation between each two of these, and under `(?i:` every range
 * twice over plus the non-ASCII letters ASCII ones fold to (`ſ`, `K`).
 */
function classCost(parts: ClassParts, negated: boolean, foldCase: boolean): number {
  let ascii = mergeRanges(parts.ascii);
  let nonAscii = parts.nonAscii;
  if (negated || parts.wide) {
    if (negated) ascii = complementAscii(ascii);
    // The complement of what the class names past 0x7f has as many edges as it does.
    nonAscii += NON_ASCII_ANY;
  }
  const alternatives = ascii.length + (nonAscii > 0 ? 1 : 0);
  const cost = ascii.length + nonAscii + Math.max(0, alternatives - 1);
  return foldCase ? 2 * cost + 8 : cost;
}

/** The parser's state: the pattern, where it is in it, and how many repeats it has read. */
interface Cursor {
  p: string;
  i: number;
  repeats: number;
}

/**
 * Branches cost their sum and one alternation between each two; a branch
 * that holds a repeat may cost RE2 up to two more (no-ops, so that the
 * alternation does not lead into a loop).
 */
function parseAlternation(c: Cursor, foldCase: boolean): number {
  const branch = () => {
    const before = c.repeats;
    const size = parseConcatenation(c, foldCase);
    return { size, loops: c.repeats > before };
  };
  const branches = [branch()];
  while (c.p[c.i] === "|") {
    c.i++;
    branches.push(branch());
  }
  if (branches.length === 1) return branches[0]!.size;
  return branches.reduce((total, b) => total + b.size + (b.loops ? 2 : 0), branches.length - 1);
}

function parseConcatenation(c: Cursor, foldCase: boolean): number {
  let total = 0;
  while (c.i < c.p.length && c.p[c.i] !== "|" && c.p[c.i] !== ")") {
    const before = c.repeats;
    const atom = parseAtom(c, foldCase);
    total += parseRepeat(c, atom, c.repeats > before);
  }
  return total;
}

/** `{n}`, `{n,}` or `{n,m}` at the cursor. */
const REPEAT = /^\{(\d+)(?:(,)(\d*))?\}/;

/**
 * RE2 simplifies `x{n,m}` into n copies of x and m − n nested optional
 * copies (each with its alternation), `x{n,}` into n copies with the last
 * looping, and `*`, `+`, `?` add one alternation. When x holds a repeat
 * itself RE2 may need a second instruction per loop or optional copy (a
 * loop over something that can match empty is compiled the other way
 * round, `(x+)?` for `x*`), so it is counted twice.
 */
function parseRepeat(c: Cursor, atom: number, nested: boolean): number {
  let size = atom;
  let extra = nested ? 2 : 1;
  for (;;) {
    const ch = c.p[c.i];
    if (ch === "*" || ch === "+" || ch === "?") {
      c.i++;
      size += extra;
    } else if (ch === "{") {
      const m = REPEAT.exec(c.p.slice(c.i));
      if (!m) return size;
      c.i += m[0].length;
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === "" ? undefined : Number(m[3]);
      size = max === undefined
        ? Math.max(min, 1) * size + extra
        : min * size + (max - min) * (size + extra);
    } else {
      return size;
    }
    c.repeats++;
    extra = 2;
    // A lazy `?` changes the order of an alternation, not its size.
    if (c.p[c.i] === "?") c.i++;
  }
}

function parseAtom(c: Cursor, foldCase: boolean): number {
  const ch = c.p[c.i]!;
  switch (ch) {
    case "(":
      return parseGroup(c, foldCase);
    case "[":
      return parseClass(c, foldCase);
    case ".":
      c.i++;
      // Any character but a newline: two ASCII ranges, then 80–10FFFF.
      return 2 * 2 + NON_ASCII_ANY;
    case "^":
    case "$":
      c.i++;
      return 1;
    case "\\":
      return escapeAtom(c, foldCase);
    default: {
      const cp = c.p.codePointAt(c.i)!;
      c.i += cp > 0xffff ? 2 : 1;
      return literalCost(cp, foldCase);
    }
  }
}

/**
 * A literal: one byte range per UTF-8 byte. Folded, an ASCII letter is one
 * byte range with RE2's fold flag, except `k` and `s`, which also fold to
 * `K` (U+212A) and `ſ` (U+017F); any other character is a class of its
 * case variants.
 */
function literalCost(cp: number, foldCase: boolean): number {
  if (!foldCase) return utf8Length(cp);
  if (cp < 0x80 && !/[ks]/i.test(String.fromCodePoint(cp))) return 1;
  const parts: ClassParts = { ascii: [], nonAscii: 0, wide: false };
  addRange(parts, cp, cp);
  return classCost(parts, false, true);
}

/** A group: `(`, `(?:`, `(?P<n>`, `(?<n>`, `(?flags:`; capturing adds two instructions. */
function parseGroup(c: Cursor, foldCase: boolean): number {
  c.i++;
  let capture = true;
  let fold = foldCase;
  if (c.p[c.i] === "?") {
    const named = /^\?P?<[^>]*>/.exec(c.p.slice(c.i));
    const flags = /^\?([a-zA-Z]*)(?:-([a-zA-Z]*))?:/.exec(c.p.slice(c.i));
    if (named) {
      c.i += named[0].length;
    } else if (flags) {
      capture = false;
      if (flags[1]!.includes("i")) fold = true;
      if (flags[2]?.includes("i")) fold = false;
      c.i += flags[0].length;
    }
  }
  const inner = parseAlternation(c, fold);
  if (c.p[c.i] === ")") c.i++;
  return inner + (capture ? 2 : 0);
}

/** `\xHH`, `\x{H…}`, an octal `\0`…, a C escape, or an escaped character: its code point. */
function escapedCodePoint(c: Cursor): number {
  const rest = c.p.slice(c.i);
  const hex = /^\\x(?:\{([0-9a-fA-F]+)\}|([0-9a-fA-F]{2}))/.exec(rest);
  if (hex) {
    c.i += hex[0].length;
    return parseInt(hex[1] ?? hex[2]!, 16);
  }
  const octal = /^\\([0-7]{1,3})/.exec(rest);
  if (octal) {
    c.i += octal[0].length;
    return parseInt(octal[1]!, 8);
  }
  const next = c.p.codePointAt(c.i + 1) ?? 0x5c;
  c.i += next > 0xffff ? 3 : 2;
  const named: Record<string, number> = { n: 10, t: 9, r: 13, f: 12, v: 11, a: 7 };
  return named[String.fromCodePoint(next)] ?? next;
}

/** What a class escape at the cursor adds to `parts`, or false when it is a single character. */
function classEscape(c: Cursor, parts: ClassParts): boolean {
  const next = c.p[c.i + 1];
  if (next === "p" || next === "P") {
    const m = /^\\[pP](?:\{\^?([^}]*)\}|(\w))/.exec(c.p.slice(c.i));
    const name = m?.[1] ?? m?.[2] ?? "";
    const negated = (next === "P") !== (m?.[0].includes("{^") ?? false);
    c.i += m?.[0].length ?? 2;
    parts.nonAscii += propertyCost(name, negated);
    // A property's ASCII members are counted in its measured size.
    if (negated) parts.wide = true;
    return true;
  }
  if (next !== undefined && /[dswDSW]/.test(next)) {
    c.i += 2;
    const ranges = PERL_CLASSES[next.toLowerCase()]!;
    const copy = ranges.map(([a, b]): [number, number] => [a, b]);
    if (next === next.toLowerCase()) parts.ascii.push(...copy);
    else {
      parts.ascii.push(...complementAscii(copy));
      parts.wide = true;
    }
    return true;
  }
  return false;
}

function escapeAtom(c: Cursor, foldCase: boolean): number {
  const next = c.p[c.i + 1];
  if (next !== undefined && "bBAzZ".includes(next)) {
    c.i += 2;
    return 1;
  }
  const parts: ClassParts = { ascii: [], nonAscii: 0, wide: false };
  if (classEscape(c, parts)) return classCost(parts, false, foldCase);
  return literalCost(escapedCodePoint(c), foldCase);
}

/** A bracketed class, `[` at the cursor; `[:alpha:]` counts as its letters, an overcount. */
function parseClass(c: Cursor, foldCase: boolean): number {
  c.i++;
  const negated = c.p[c.i] === "^";
  if (negated) c.i++;
  const parts: ClassParts = { ascii: [], nonAscii: 0, wide: false };
  let first = true;
  while (c.i < c.p.length && (c.p[c.i] !== "]" || first)) {
    first = false;
    let lo: number;
    if (c.p[c.i] === "\\") {
      if (classEscape(c, parts)) continue;
      lo = escapedCodePoint(c);
    } else {
      lo = c.p.codePointAt(c.i)!;
      c.i += lo > 0xffff ? 2 : 1;
    }
    let hi = lo;
    if (c.p[c.i] === "-" && c.p[c.i + 1] !== "]" && c.i + 1 < c.p.length) {
      c.i++;
      if (c.p[c.i] === "\\") hi = escapedCodePoint(c);
      else {
        hi = c.p.codePointAt(c.i)!;
        c.i += hi > 0xffff ? 2 : 1;
      }
    }
    addRange(parts, Math.min(lo, hi), Math.max(lo, hi));
  }
  c.i++;
  return classCost(parts, negated, foldCase);
}

/**
 * An upper bound of the program size RE2 gives `pattern`, which must
 * already have passed re2.ts's checks (this does not report syntax errors).
 */
export function re2ProgramSizeBound(pattern: string): number {
  const c: Cursor = { p: pattern, i: 0, repeats: 0 };
  let size = 0;
  // A `)` without its `(` is a syntax error re2.ts reports; skip it here.
  while (c.i < pattern.length) {
    size += parseAlternation(c, false);
    if (c.i < pattern.length) c.i++;
  }
  return size + PROGRAM_OVERHEAD;
}
