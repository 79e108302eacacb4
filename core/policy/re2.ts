/**
 * Checks regular expressions of policies before Envoy sees them. Envoy
 * matches with RE2 (`safe_regex`), which refuses anything that needs
 * backtracking; a regex it refuses NACKs the whole route table, so we refuse
 * it at write time instead. The control plane has no RE2 of its own, only
 * JavaScript's engine, so a pattern must also compile there (with `u`, as
 * RE2 reads UTF-8): we accept the subset both engines read alike, and name the
 * RE2 feature at fault where JavaScript's own message would not help
 * (`a*+` is "Nothing to repeat" to it). Last, its RE2 program must fit
 * Envoy's size limit (`re2_program_size.ts`).
 */
import { MAX_RE2_PROGRAM_SIZE, re2ProgramSizeBound } from "./re2_program_size.ts";

/** Longest pattern accepted: a bound on what a policy stores; program size is checked on its own. */
const MAX_REGEX_LENGTH = 1024;

/** RE2's largest repeat count; nested counts may not multiply past it either. */
const MAX_REPEAT = 1000;

/** The `\p{…}` names both RE2 and JavaScript know: Unicode general categories, and `Any`. */
const PROPERTY_NAMES: ReadonlySet<string> = new Set([
  "Any",
  ..."C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs"
    .split(" "),
]);

/** `{n}`, `{n,}` or `{n,m}` at the start of the text. */
const REPEAT = /^\{(\d+)(?:,(\d*))?\}/;

/**
 * Returns why `pattern` cannot be used as an Envoy `safe_regex`, or
 * `undefined` when it can. Like Envoy, the pattern must match the whole
 * value: `^` and `$` are allowed but not needed.
 */
export function re2Problem(pattern: string): string | undefined {
  if (pattern.length > MAX_REGEX_LENGTH) {
    return `Regex is too long: ${pattern.length} characters, at most ${MAX_REGEX_LENGTH} are allowed`;
  }
  const unsupported = unsupportedFeature(pattern);
  if (unsupported) return `Invalid regex "${pattern}": ${unsupported}`;
  try {
    new RegExp(pattern, "u");
  } catch (e) {
    // V8 says `Invalid regular expression: /<pattern>/u: <reason>`; keep the reason.
    const message = e instanceof Error ? e.message : String(e);
    return `Invalid regex "${pattern}": ${message.slice(message.lastIndexOf(": ") + 2)}`;
  }
  const size = re2ProgramSizeBound(pattern);
  if (size > MAX_RE2_PROGRAM_SIZE) {
    return `Invalid regex "${pattern}": its RE2 program may take ${size} instructions, over Envoy's limit of ${MAX_RE2_PROGRAM_SIZE}: use smaller repeat counts or narrower classes`;
  }
  return undefined;
}

/**
 * Scans `p` for what JavaScript accepts (or would report badly) but RE2
 * refuses. It tracks only what the checks need: whether we are inside a
 * character class, and the product of `{n}` counts of the open groups.
 * Syntax errors are left to JavaScript's compiler.
 */
function unsupportedFeature(p: string): string | undefined {
  // Largest product of nested repeat counts seen in each open group, outermost first.
  const groups: number[] = [1];
  // The repeat product of the atom just read, which a following `{n}` multiplies.
  let last = 1;
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === "\\") {
      const problem = escapeProblem(p, i, inClass);
      if (problem) return problem;
      // `\p{L}`: skip the braces, or they would read as a repeat.
      const end = /^\\[pP]\{[^}]*\}/.exec(p.slice(i))?.[0].length ?? 2;
      i += end - 1;
      last = 1;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    switch (c) {
      case "[": {
        // RE2 reads a `]` right after `[` or `[^` as a literal; JavaScript closes the class there.
        const empty = /^\[\^?\]/.exec(p.slice(i));
        if (empty) {
          return `"${
            empty[0]
          }" means different things to RE2 and JavaScript: escape a literal "]" as "\\]"`;
        }
        inClass = true;
        last = 1;
        break;
      }
      case "(": {
        const problem = groupProblem(p.slice(i));
        if (problem) return problem;
        groups.push(1);
        // Skip the `?` of `(?:`, so it does not read as a quantifier.
        if (p[i + 1] === "?") i++;
        break;
      }
      case ")": {
        // An unbalanced `)` is JavaScript's to report; keep the outermost frame.
        last = groups.length > 1 ? groups.pop()! : 1;
        groups[groups.length - 1] = Math.max(groups.at(-1)!, last);
        break;
      }
      case "{": {
        const m = REPEAT.exec(p.slice(i));
        if (!m) break;
        const max = m[2] ? Number(m[2]) : Number(m[1]);
        const count = Math.max(Number(m[1]), max);
        if (count > MAX_REPEAT) {
          return `repeat count "${m[0]}" is over RE2's limit of ${MAX_REPEAT}`;
        }
        const product = last * Math.max(max, 1);
        if (product > MAX_REPEAT) {
          return `nested repeat counts multiply to ${product}, over RE2's limit of ${MAX_REPEAT}`;
        }
        groups[groups.length - 1] = Math.max(groups.at(-1)!, product);
        i += m[0].length - 1;
        if (p[i + 1] === "+") return possessive(m[0]);
        break;
      }
      case "*":
      case "+":
      case "?":
        if (p[i + 1] === "+") return possessive(c);
        break;
      default:
        last = 1;
    }
  }
  return undefined;
}

function possessive(quantifier: string): string {
  return `possessive quantifiers ("${quantifier}+") are not supported by RE2: drop the "+"`;
}

/** What RE2 refuses at the start of a group, `text` starting at its `(`. */
function groupProblem(text: string): string | undefined {
  if (text.startsWith("(?=") || text.startsWith("(?!")) {
    return `lookahead ("${text.slice(0, 3)}") is not supported by RE2`;
  }
  if (text.startsWith("(?<=") || text.startsWith("(?<!")) {
    return `lookbehind ("${text.slice(0, 4)}") is not supported by RE2`;
  }
  if (text.startsWith("(?>")) return `atomic groups ("(?>") are not supported by RE2`;
  // RE2 lets `(?i)` change the rest of the pattern; JavaScript has only the scoped form.
  const flags = /^\(\?[a-zA-Z-]+\)/.exec(text);
  if (flags) {
    return `flags for the rest of the pattern ("${flags[0]}") are not supported: use a group, "${
      flags[0].slice(0, -1)
    }:...)"`;
  }
  return undefined;
}

/** What RE2 refuses in the escape at `p[i]` (a backslash). */
function escapeProblem(p: string, i: number, inClass: boolean): string | undefined {
  const next = p[i + 1];
  if (!inClass) {
    const backref = /^\\[1-9]\d*/.exec(p.slice(i));
    if (backref) return `backreferences ("${backref[0]}") are not supported by RE2`;
    if (next === "k") return `backreferences ("\\k<name>") are not supported by RE2`;
  }
  switch (next) {
    case "b":
      return inClass
        ? `"\\b" in a character class is not supported by RE2: use "\\x08"`
        : undefined;
    case "Z":
      return `"\\Z" is not supported by RE2: use "$"`;
    case "u":
      return `"\\u" escapes are not supported by RE2: write the character itself, or "\\xHH" below 0x100`;
    case "c":
      return `control escapes ("\\c") are not supported by RE2: use "\\xHH"`;
    case "p":
    case "P": {
      const name = /^\\[pP]\{([^}]*)\}/.exec(p.slice(i))?.[1];
      if (name !== undefined && !PROPERTY_NAMES.has(name)) {
        return `"\\${next}{${name}}" is not supported: use a Unicode general category such as "\\p{L}" or "\\p{Lu}"`;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}
