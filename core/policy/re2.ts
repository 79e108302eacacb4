/**
 * Checks regular expressions of policies before Envoy sees them. Envoy
 * matches with RE2 (`safe_regex`), which refuses anything that needs
 * backtracking; a regex it refuses NACKs the whole route table, so we refuse
 * it at write time instead. A pattern must also compile in JavaScript (with
 * `u`, as RE2 reads UTF-8), the engine of the control plane's own matching:
 * we accept what both engines read alike.
 *
 * Three steps, each for a reason:
 * 1. A scan for the RE2 features people reach for (backreferences,
 *    lookaround, possessive quantifiers, …), to name the feature and the fix
 *    where either engine's message would not help (`a*+` is "Nothing to
 *    repeat" to JavaScript and "invalid nested repetition operator" to RE2).
 * 2. JavaScript's compiler, then RE2's own parser (`re2js`, a port of RE2):
 *    the scan is a list of what we know, RE2's parser is the whole grammar.
 *    Decided by a test-based comparison (2026-12-07): over 137,489 random
 *    patterns of regex tokens, the scan and JavaScript together accepted 200
 *    that RE2 refuses, all with a POSIX class inside a class (`[a[:alpha:]`,
 *    which JavaScript reads as literal characters); `re2_test.ts` checks that
 *    every refusal the scan names is one RE2 makes too.
 * 3. Its RE2 program must fit Envoy's size limit (`re2_program_size.ts`);
 *    `re2js` compiles Go's program, not RE2's, so it cannot measure that.
 */
import { RE2JS } from "re2js";
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
  try {
    RE2JS.compile(pattern);
  } catch (e) {
    // re2js says `error parsing regexp: <reason>: `<where>``, as RE2 does; keep the reason.
    const message = e instanceof Error ? e.message : String(e);
    return `Invalid regex "${pattern}": RE2 refuses it: ${
      message.replace(/^error parsing regexp: /, "")
    }`;
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
    if (backref && /^\\[1-7][0-7]/.test(backref[0])) {
      // RE2 reads `\12` as the octal escape of a newline; JavaScript as backreference 12.
      return `"${
        backref[0]
      }" means different things to RE2 (an octal escape) and JavaScript (a backreference): write a character as "\\xHH"`;
    }
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
