/**
 * The import-layer check of the quality gate (`deno task layers`): every
 * relative import must point inward, `cmd → api/xds/agent → registry/ca/
 * policy/auth/client → store → core`, so the architecture in DESIGN.md
 * cannot rot one convenient import at a time. It reads the sources with a
 * small scanner rather than a full parser: comments, string contents and
 * regular expressions are masked first, so only real import syntax counts.
 *
 * Run: `deno run -A scripts/check_layers.ts`; exits 1 listing each problem.
 */
import { posix } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The rank of each top-level folder: a file may import only lower ranks.
 * Folders of the same rank are peers and may not import each other.
 */
export const LAYERS: Readonly<Record<string, number>> = {
  core: 0,
  store: 1,
  registry: 2,
  ca: 2,
  policy: 2,
  auth: 2,
  client: 2,
  api: 3,
  xds: 3,
  agent: 3,
  cmd: 4,
  scripts: 5,
  tests: 5,
  // Sample apps for the quickstart; they stand alone like a user's program.
  examples: 5,
  // Files at the top (a future `mod.ts`) wire things together, as `cmd` does.
  "": 5,
};

/** Folders whose files may import anything: they wire the program or test it from outside. */
const UNRESTRICTED: ReadonlySet<string> = new Set(["cmd", "scripts", "tests", ""]);

/** The one file of a lower layer that test files may import whatever their layer. */
const SHARED_TEST_SUITE = "store/contract.ts";

/** Folders that hold no sources of ours. */
const SKIPPED_DIRS: ReadonlySet<string> = new Set(["node_modules", "dist"]);

/** One import found in a source file. */
export interface ImportRef {
  specifier: string;
  /** 1-based line of the specifier. */
  line: number;
}

/** One import that breaks a rule. */
export interface Violation extends ImportRef {
  file: string;
  reason: string;
}

/** The top-level folder of a repository-relative path; `""` for a file at the top. */
function folderOf(path: string): string {
  const slash = path.indexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

/** True for the files `deno test` picks up by default. */
export function isTestFile(path: string): boolean {
  return /(?:^|\/|[._])test\.(?:m?ts|tsx)$/.test(path);
}

function noLayer(folder: string): string {
  return `folder "${folder}" is in no layer: add it to LAYERS in scripts/check_layers.ts`;
}

/**
 * Why the file `from` may not import the file `to` (both relative to the
 * repository root, `/`-separated), or `undefined` when it may.
 */
export function importProblem(from: string, to: string): string | undefined {
  if (to === ".." || to.startsWith("../")) return "it is outside the repository";
  const fromFolder = folderOf(from);
  const toFolder = folderOf(to);
  const fromRank = LAYERS[fromFolder];
  const toRank = LAYERS[toFolder];
  if (fromRank === undefined) return noLayer(fromFolder);
  if (toRank === undefined) return noLayer(toFolder);
  if (fromFolder === toFolder || UNRESTRICTED.has(fromFolder) || toFolder === "core") {
    return undefined;
  }
  // Tests may reach sideways (a registry test may use a CA helper) but never outward.
  const allowed = isTestFile(from)
    ? toRank <= fromRank || to === SHARED_TEST_SUITE
    : toRank < fromRank;
  return allowed ? undefined : `layer ${fromFolder} may not import layer ${toFolder}`;
}

/**
 * Why a specifier is refused whatever the layers, or `undefined`: remote
 * specifiers bypass the import map and the lock file, absolute ones break on
 * another machine.
 */
export function specifierProblem(specifier: string): string | undefined {
  if (/^(?:jsr|https?):/i.test(specifier)) {
    return "jsr:, http: and https: specifiers are not allowed: add the package to the import map in deno.json";
  }
  if (specifier.startsWith("/") || /^file:/i.test(specifier)) {
    return "absolute specifiers are not allowed: use a relative path";
  }
  return undefined;
}

/** Checks every import of one file; `path` is relative to the repository root. */
export function checkFile(path: string, source: string): Violation[] {
  const violations: Violation[] = [];
  for (const ref of importsOf(source)) {
    let reason = specifierProblem(ref.specifier);
    if (reason === undefined && /^\.\.?\//.test(ref.specifier)) {
      const target = posix.normalize(posix.join(posix.dirname(path), ref.specifier));
      reason = importProblem(path, target);
    }
    if (reason !== undefined) violations.push({ file: path, ...ref, reason });
  }
  return violations;
}

const IMPORT_PATTERNS: readonly RegExp[] = [
  // `import … from "x"`, `export … from "x"`, `import type …`, `export * as n from "x"`
  /(?<![\w$.])(?:import|export)\b[\w$*{},\s]*?\bfrom\s*"#(\d+)"/g,
  // `import "x"` (side effects only)
  /(?<![\w$.])import\s*"#(\d+)"/g,
  // `import("x")`, also in type positions such as `typeof import("x")`
  /(?<![\w$.])import\s*\(\s*"#(\d+)"/g,
];

/** Every static, side-effect and dynamic import of a TypeScript or JavaScript source. */
export function importsOf(source: string): ImportRef[] {
  const { code, strings } = maskSource(source);
  const refs: ImportRef[] = [];
  for (const pattern of IMPORT_PATTERNS) {
    for (const match of code.matchAll(pattern)) {
      const specifier = strings[Number(match[1])];
      if (specifier === undefined) continue;
      const end = match.index + match[0].length;
      refs.push({ specifier, line: code.slice(0, end).split("\n").length });
    }
  }
  return refs.sort((a, b) => a.line - b.line);
}

/**
 * Replaces every string literal (and template without substitutions) by a
 * placeholder `"#N"` and blanks comments, regular expressions and template
 * text, keeping line breaks. The import patterns then cannot match inside a
 * comment or a string, and every `"` left in the code starts a placeholder.
 */
function maskSource(source: string): { code: string; strings: string[] } {
  const strings: string[] = [];
  let code = "";
  // The brace depth at which each open `${` of a template literal closes.
  const substitutions: number[] = [];
  let depth = 0;
  let i = 0;
  const placeholder = (raw: string, text: string) => {
    strings.push(text);
    code += `"#${strings.length - 1}"` + raw.replace(/[^\n]/g, "");
  };
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    let stop: number | undefined;
    if (c === "/" && next === "/") {
      const newline = source.indexOf("\n", i);
      stop = newline < 0 ? source.length : newline;
      code += blank(source.slice(i, stop));
    } else if (c === "/" && next === "*") {
      const close = source.indexOf("*/", i + 2);
      stop = close < 0 ? source.length : close + 2;
      code += blank(source.slice(i, stop));
    } else if (c === '"' || c === "'") {
      stop = endOfString(source, i + 1, c);
      placeholder(source.slice(i, stop), source.slice(i + 1, stop - 1));
    } else if (c === "`" || (c === "}" && substitutions.at(-1) === depth)) {
      if (c === "}") substitutions.pop();
      const part = endOfTemplatePart(source, i + 1);
      stop = part.stop;
      if (c === "`" && !part.opens) {
        placeholder(source.slice(i, stop), source.slice(i + 1, stop - 1));
      } else {
        code += blank(source.slice(i, stop));
        if (part.opens) substitutions.push(depth);
      }
    } else if (c === "/" && regexMayStart(code)) {
      stop = endOfRegex(source, i + 1);
      if (stop !== undefined) code += blank(source.slice(i, stop));
    }
    if (stop !== undefined) {
      i = stop;
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}") depth--;
    code += c;
    i++;
  }
  return { code, strings };
}

function blank(text: string): string {
  return text.replace(/[^\n]/g, " ");
}

/** Index after the closing quote; an unterminated string ends at the line break. */
function endOfString(source: string, start: number, quote: string): number {
  let j = start;
  while (j < source.length) {
    const ch = source[j];
    if (ch === "\\") j += 2;
    else if (ch === quote) return j + 1;
    else if (ch === "\n") return j;
    else j++;
  }
  return source.length;
}

/** Index after the closing backtick or after the next `${`, and which one it was. */
function endOfTemplatePart(source: string, start: number): { stop: number; opens: boolean } {
  let j = start;
  while (j < source.length) {
    const ch = source[j];
    if (ch === "\\") j += 2;
    else if (ch === "`") return { stop: j + 1, opens: false };
    else if (ch === "$" && source[j + 1] === "{") return { stop: j + 2, opens: true };
    else j++;
  }
  return { stop: source.length, opens: false };
}

const KEYWORDS_BEFORE_EXPRESSION = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "void",
  "yield",
  "await",
  "delete",
  "instanceof",
  "new",
  "throw",
]);

/** Whether a `/` after `code` starts a regular expression rather than a division. */
function regexMayStart(code: string): boolean {
  let j = code.length - 1;
  while (j >= 0 && /\s/.test(code[j]!)) j--;
  if (j < 0) return true;
  const last = code[j]!;
  if ("(,=:[!&|?{};+-*%<>~^}".includes(last)) return true;
  if (!/[\w$]/.test(last)) return false;
  let k = j;
  while (k > 0 && /[\w$]/.test(code[k - 1]!)) k--;
  return KEYWORDS_BEFORE_EXPRESSION.has(code.slice(k, j + 1));
}

/** Index after a regular expression's flags, or `undefined` when the line ends first. */
function endOfRegex(source: string, start: number): number | undefined {
  let j = start;
  let inClass = false;
  while (j < source.length) {
    const ch = source[j];
    if (ch === "\n") return undefined;
    if (ch === "\\") {
      j += 2;
      continue;
    }
    if (ch === "/" && !inClass) {
      j++;
      while (j < source.length && /[a-z]/i.test(source[j]!)) j++;
      return j;
    }
    if (ch === "[") inClass = true;
    else if (ch === "]") inClass = false;
    j++;
  }
  return undefined;
}

/** Repository-relative paths of every TypeScript source below `root`, sorted. */
async function sourceFiles(root: string, dir = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(posix.join(root, dir))) {
    if (entry.name.startsWith(".") || SKIPPED_DIRS.has(entry.name)) continue;
    const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...await sourceFiles(root, path));
    else if (entry.isFile && /\.(?:m?ts|tsx)$/.test(entry.name)) files.push(path);
  }
  return files.sort();
}

async function main(root: string): Promise<number> {
  const files = await sourceFiles(root);
  const violations: Violation[] = [];
  let imports = 0;
  for (const file of files) {
    const folder = folderOf(file);
    if (LAYERS[folder] === undefined) {
      violations.push({ file, specifier: "", line: 1, reason: noLayer(folder) });
      continue;
    }
    const source = await Deno.readTextFile(posix.join(root, file));
    imports += importsOf(source).length;
    violations.push(...checkFile(file, source));
  }
  if (violations.length === 0) {
    console.log(`Layers OK: ${imports} imports in ${files.length} files point inward`);
    return 0;
  }
  for (const v of violations) {
    console.error(
      v.specifier === ""
        ? `${v.file}: ${v.reason}`
        : `${v.file}:${v.line}: imports "${v.specifier}" (${v.reason})`,
    );
  }
  console.error(
    `Layer check failed: ${violations.length} problem(s) in ${
      new Set(violations.map((v) => v.file)).size
    } file(s)`,
  );
  return 1;
}

if (import.meta.main) {
  Deno.exit(await main(fileURLToPath(new URL("..", import.meta.url))));
}
