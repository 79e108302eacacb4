/**
 * Release build: `deno task bundle` and `deno task compile`.
 *
 * - `bundle` runs `deno bundle --platform deno` on `cmd/main.ts` into
 *   `dist/ironmesh.js`: one file with every npm package inlined and only
 *   `node:` built-ins left as imports. It then scans the output for things
 *   that would reach back into the source tree at run time, and runs
 *   `deno run -A ironmesh.js version` from an empty directory.
 * - `compile [--target T]…` runs `deno compile` once per target into
 *   `dist/ironmesh-<os>-<arch>`. `deno compile` downloads a runtime
 *   (`denort`) per target; where that is impossible, set `DENORT_BIN` to a
 *   `denort` binary for the one target you pass.
 * - `all` does both.
 *
 * Each command writes `dist/SHA256SUMS` (`sha256sum -c` format) over the
 * artifacts it produced. Exit status: 0 when everything was built, 1 when a
 * build failed, 2 for a usage error.
 *
 * Run: `deno run -A scripts/build.ts bundle|compile|all [options]`.
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { VERSION } from "../core/version.ts";

/** The repository root, with a trailing slash. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The program's entry point, relative to {@link ROOT}. */
export const ENTRY = "cmd/main.ts";
/** The bundle's file name. */
export const BUNDLE_NAME = "ironmesh.js";

/** A `deno compile` target. */
export interface Target {
  /** Rust target triple, as `deno compile --target` takes it. */
  triple: string;
  os: "linux" | "darwin";
  arch: "x86_64" | "aarch64";
}

/** The targets `compile` builds by default, in this order. */
export const TARGETS: readonly Target[] = [
  { triple: "x86_64-unknown-linux-gnu", os: "linux", arch: "x86_64" },
  { triple: "aarch64-unknown-linux-gnu", os: "linux", arch: "aarch64" },
  { triple: "x86_64-apple-darwin", os: "darwin", arch: "x86_64" },
  { triple: "aarch64-apple-darwin", os: "darwin", arch: "aarch64" },
];

const OS_ALIASES: Record<string, Target["os"]> = {
  linux: "linux",
  darwin: "darwin",
  macos: "darwin",
  mac: "darwin",
  apple: "darwin",
};
const ARCH_ALIASES: Record<string, Target["arch"]> = {
  x86_64: "x86_64",
  amd64: "x86_64",
  x64: "x86_64",
  aarch64: "aarch64",
  arm64: "aarch64",
};

/**
 * Parses a target: a triple (`x86_64-unknown-linux-gnu`) or a shortcut in
 * either order (`linux-x86_64`, `x86_64-linux`, `darwin-arm64`,
 * `macos-amd64`). Throws a message listing the valid names otherwise.
 */
export function parseTarget(text: string): Target {
  const name = text.trim().toLowerCase();
  const exact = TARGETS.find((t) => t.triple === name);
  if (exact) return exact;
  // Split on "-" and "/" only, so "x86_64" stays one word ("x86-64" is folded into it).
  const words = name.replace(/x86-64/g, "x86_64").split(/[-/]/).filter(Boolean);
  if (words.length === 2) {
    const [a, b] = words as [string, string];
    const os = OS_ALIASES[a] ?? OS_ALIASES[b];
    const arch = ARCH_ALIASES[a] ?? ARCH_ALIASES[b];
    if (os && arch) return TARGETS.find((t) => t.os === os && t.arch === arch)!;
  }
  const valid = TARGETS.map((t) => `${t.os}-${t.arch} (${t.triple})`).join(", ");
  throw new UsageError(`Unknown target "${text}": use one of ${valid}`);
}

/** The file name of the executable for `target`. */
export function artifactName(target: Target): string {
  return `ironmesh-${target.os}-${target.arch}`;
}

/** A mistake on the command line (exit status 2). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Something in the bundle worth knowing about, with the source file it came from. */
export interface Finding {
  /** `error` fails the build: the bundle would depend on the machine it was built on. */
  level: "error" | "warning";
  /** 1-based line in the bundle. */
  line: number;
  /** The module the line belongs to (from the bundler's `// path` comments), or `?`. */
  source: string;
  message: string;
  excerpt: string;
}

interface Rule {
  level: Finding["level"];
  pattern: RegExp;
  message: string;
  /** Lines this rule ignores (e.g. the bundler's own preamble). */
  skip?: RegExp;
}

function rules(root: string): Rule[] {
  const rootNoSlash = root.replace(/\/+$/, "");
  const escaped = rootNoSlash.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return [
    {
      level: "error",
      pattern: new RegExp(`${escaped}(?=[/"'\`]|$)`),
      message: `absolute path of the source tree (${rootNoSlash}) baked into the bundle`,
    },
    {
      level: "error",
      pattern: /\bfrom\s*["'](?:npm|jsr|https?):|\bimport\s*\(\s*["'](?:npm|jsr|https?):/,
      message: "import left external: the bundle would fetch it at run time",
    },
    {
      level: "warning",
      pattern: /new\s+(?:Shared)?Worker\s*\(/,
      message: "Web Worker: its module URL is resolved at run time and is not in the bundle",
    },
    {
      level: "warning",
      pattern: /\bimport\.meta\.(?:url|dirname|filename|resolve)\b/,
      message: "import.meta.url-relative: resolves next to the bundle, not in the source tree",
      // The bundler's own `createRequire(import.meta.url)` for `node:` built-ins.
      skip: /__deno_internal_createRequire\(import\.meta\.url\)|^\s*\*/,
    },
    {
      level: "warning",
      pattern: /(?<![.\w$])import\s*\(\s*[^"'\s)]/,
      message: "dynamic import of a computed specifier: not bundled",
      // A method named `import` (`import(data, options) {`) is not an import.
      skip: /^\s*(?:async\s+)?import\s*\([^)]*\)\s*\{/,
    },
    {
      level: "warning",
      pattern: /\$\{__dirname\}|\b__dirname\s*[+,)]|\b__filename\b/,
      message: "CommonJS __dirname/__filename: not defined in an ES module bundle",
    },
  ];
}

/**
 * Scans bundle text for code that would read the source tree or the network
 * at run time. Each finding names the module it came from.
 */
export function inspectBundle(text: string, root: string = ROOT): Finding[] {
  const findings: Finding[] = [];
  const checks = rules(root);
  let source = "?";
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const marker = /^\/\/ ((?:[\w@.+-]+\/)*[\w@.+-]+\.(?:[cm]?[jt]sx?|json))$/.exec(line);
    if (marker) {
      source = marker[1]!.replace(/^node_modules\/\.deno\/[^/]+\/node_modules\//, "npm:");
      continue;
    }
    for (const rule of checks) {
      if (!rule.pattern.test(line) || rule.skip?.test(line)) continue;
      findings.push({
        level: rule.level,
        line: i + 1,
        source,
        message: rule.message,
        excerpt: line.trim().slice(0, 160),
      });
    }
  }
  return findings;
}

/** Formats findings one a line, for the console and for assertion messages. */
export function formatFindings(findings: readonly Finding[]): string {
  return findings.map((f) =>
    `  ${f.level}: ${f.source} (line ${f.line}): ${f.message}\n` +
    `      ${f.excerpt}`
  ).join("\n");
}

/** SHA-256 of a file, hex, read in chunks so 100 MB executables do not sit in memory twice. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Writes `<dir>/SHA256SUMS` over `names` (files in `dir`), in `sha256sum -c` format. */
export async function writeSums(dir: string, names: readonly string[]): Promise<string> {
  const lines: string[] = [];
  for (const name of [...names].sort()) {
    lines.push(`${await sha256File(`${dir}/${name}`)}  ${name}`);
  }
  const path = `${dir}/SHA256SUMS`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** The release artifacts present in `dir`: the bundle (and its map) and the executables. */
export async function releaseArtifacts(dir: string): Promise<string[]> {
  const known = new Set([BUNDLE_NAME, `${BUNDLE_NAME}.map`, ...TARGETS.map(artifactName)]);
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && known.has(entry.name)) found.push(entry.name);
  }
  return found.sort();
}

/** The nearest directory at or above `dir` holding a Deno or Node project file, if any. */
export async function projectAbove(dir: string): Promise<string | null> {
  const markers = ["deno.json", "deno.jsonc", "package.json", "node_modules", "deno.lock"];
  let current = dir.replace(/\/+$/, "") || "/";
  while (true) {
    for (const marker of markers) {
      const found = await Deno.stat(`${current}/${marker}`).then(() => true, () => false);
      if (found) return `${current === "/" ? "" : current}/${marker}`;
    }
    if (current === "/") return null;
    current = current.slice(0, current.lastIndexOf("/")) || "/";
  }
}

/** A fresh empty directory that no `deno.json` or `node_modules` can reach. */
export async function isolatedTempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  const project = await projectAbove(dir);
  if (project) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(
      `Temporary directory ${dir} is not isolated: ${project} is visible from it; ` +
        `set TMPDIR to a directory outside any project`,
    );
  }
  return dir;
}

interface Ran {
  code: number;
  output: string;
  ms: number;
}

async function run(args: string[], options: { cwd: string; env?: Record<string, string> }) {
  const start = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const output = (dec.decode(out.stdout) + dec.decode(out.stderr)).trimEnd();
  return { code: out.code, output, ms: Math.round(performance.now() - start) } satisfies Ran;
}

/** Options of {@link buildBundle}. */
export interface BundleOptions {
  /** Directory for `ironmesh.js`; created if missing. */
  outDir: string;
  /** `deno bundle --sourcemap`: `linked` and `external` write `ironmesh.js.map` beside it. */
  sourcemap?: "linked" | "inline" | "external";
  /** Also run `ironmesh.js version` from an empty directory (default true). */
  smoke?: boolean;
}

/** What {@link buildBundle} produced. */
export interface Bundle {
  /** Absolute path of `ironmesh.js`. */
  file: string;
  /** Files written in `outDir` (the bundle, and its source map if any). */
  artifacts: string[];
  bytes: number;
  findings: Finding[];
  bundleMs: number;
  /** Milliseconds of the smoke run, or null when skipped. */
  smokeMs: number | null;
}

/** A build step that failed; `message` says which and why. */
export class BuildError extends Error {
  override name = "BuildError";
}

/**
 * Bundles the program into `<outDir>/ironmesh.js`, scans it, and (unless
 * `smoke: false`) runs its `version` verb from an empty directory. Throws
 * {@link BuildError} when bundling fails, the bundle embeds the source
 * tree's path or an external import, or the smoke run fails.
 */
export async function buildBundle(options: BundleOptions): Promise<Bundle> {
  const outDir = options.outDir.startsWith("/") ? options.outDir : `${ROOT}${options.outDir}`;
  await Deno.mkdir(outDir, { recursive: true });
  const file = `${outDir.replace(/\/+$/, "")}/${BUNDLE_NAME}`;
  await Deno.remove(`${file}.map`).catch(() => {});
  const args = ["bundle", "--quiet", "--platform", "deno", "--output", file];
  if (options.sourcemap) args.push(`--sourcemap=${options.sourcemap}`);
  const bundled = await run([...args, ENTRY], { cwd: ROOT });
  if (bundled.code !== 0) {
    throw new BuildError(`deno bundle failed (exit ${bundled.code}):\n${bundled.output}`);
  }
  const text = await Deno.readTextFile(file);
  const findings = inspectBundle(text);
  const errors = findings.filter((f) => f.level === "error");
  if (errors.length > 0) {
    throw new BuildError(
      `${file} would depend on this machine at run time:\n${formatFindings(errors)}`,
    );
  }
  const artifacts = [BUNDLE_NAME];
  if (await Deno.stat(`${file}.map`).then(() => true, () => false)) {
    artifacts.push(`${BUNDLE_NAME}.map`);
  }
  let smokeMs: number | null = null;
  if (options.smoke !== false) smokeMs = await smokeBundle(file);
  return {
    file,
    artifacts,
    bytes: new TextEncoder().encode(text).length,
    findings,
    bundleMs: bundled.ms,
    smokeMs,
  };
}

/**
 * Copies only `file` into a fresh directory and runs `deno run -A
 * ironmesh.js version` there with an empty `DENO_DIR`: no source tree, no
 * `node_modules`, no npm cache. Returns the milliseconds it took.
 */
export async function smokeBundle(file: string): Promise<number> {
  const dir = await isolatedTempDir("ironmesh-smoke-");
  try {
    await Deno.copyFile(file, `${dir}/${BUNDLE_NAME}`);
    const ran = await run(["run", "-A", BUNDLE_NAME, "version"], {
      cwd: dir,
      env: { DENO_DIR: `${dir}/.deno-dir` },
    });
    if (ran.code !== 0 || !ran.output.includes(VERSION)) {
      throw new BuildError(
        `The bundle does not run on its own: "deno run -A ${BUNDLE_NAME} version" in an ` +
          `empty directory exited ${ran.code}:\n${ran.output}`,
      );
    }
    return ran.ms;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Files inside `node_modules` that `deno compile` must not embed: bintrees'
 * test data (`test/perf/100k`, 2 MB, pulled in by prom-client → tdigest)
 * makes `deno compile` 2.9.6 abort with a stack overflow while it builds the
 * embedded file system.
 */
export async function compileExcludes(root: string = ROOT): Promise<string[]> {
  const excludes: string[] = [];
  const store = `${root}node_modules/.deno`;
  try {
    for await (const entry of Deno.readDir(store)) {
      if (!entry.name.startsWith("bintrees@")) continue;
      const test = `node_modules/.deno/${entry.name}/node_modules/bintrees/test`;
      if (await Deno.stat(`${root}${test}`).then(() => true, () => false)) excludes.push(test);
    }
  } catch {
    // No node_modules yet: deno compile will create it, without the excludes.
  }
  return excludes;
}

/** Why `deno compile` failed for `target`, in one paragraph a release engineer can act on. */
export function explainCompileFailure(target: Target, output: string, denortBin?: string): string {
  const head = `Cannot compile for ${target.triple} (${artifactName(target)}):`;
  // The last "N: cause" line of Deno's error chain, before its (empty) stack backtrace.
  const cause = output.split(/\n\s*Stack backtrace:/)[0]!.split("\n").map((l) => l.trim())
    .filter((l) => /^\d+: /.test(l) || /^error: /.test(l)).pop()?.replace(/^\d+: |^error: /, "") ??
    "";
  const missing = /Could not find denort at '([^']*)'/.exec(output);
  if (missing) {
    return `${head} DENORT_BIN points to ${missing[1]}, which does not exist. Set DENORT_BIN ` +
      `to a denort binary for ${target.triple} (denort-${target.triple}.zip from a Deno release).`;
  }
  if (/dl\.deno\.land|denort-|Setting up base binary/.test(output) && !denortBin) {
    return `${head} deno compile could not download its runtime ` +
      `(denort-${target.triple}.zip from dl.deno.land): ${cause || "download failed"}.\n` +
      `  Supply the runtime locally: unzip denort-${target.triple}.zip of Deno ` +
      `${Deno.version.deno} and run\n` +
      `  DENORT_BIN=/path/to/denort deno task compile --target ${target.os}-${target.arch}`;
  }
  if (/overflowed its stack/.test(output)) {
    return `${head} deno compile crashed with a stack overflow while embedding node_modules; ` +
      `a package ships a file that trips it (see compileExcludes() in scripts/build.ts).`;
  }
  return `${head} deno compile failed:\n${output}`;
}

/** The result of compiling one target. */
export interface Compiled {
  target: Target;
  /** File name in the output directory, or null when the target failed. */
  artifact: string | null;
  /** Why it failed, or null. */
  error: string | null;
  ms: number;
}

/** Options of {@link compileTargets}. */
export interface CompileOptions {
  outDir: string;
  targets: readonly Target[];
  /** Log a line per step (default: console.error). */
  log?: (line: string) => void;
}

/** Runs `deno compile` for each target; never throws for a failing target. */
export async function compileTargets(options: CompileOptions): Promise<Compiled[]> {
  const log = options.log ?? ((line: string) => console.error(line));
  const outDir = options.outDir.startsWith("/") ? options.outDir : `${ROOT}${options.outDir}`;
  await Deno.mkdir(outDir, { recursive: true });
  const denortBin = Deno.env.get("DENORT_BIN") || undefined;
  if (denortBin && options.targets.length > 1) {
    throw new UsageError(
      `DENORT_BIN (${denortBin}) supplies the runtime of ONE target, but ${options.targets.length} ` +
        `targets were requested: pass --target, e.g. --target linux-x86_64`,
    );
  }
  const excludes = await compileExcludes();
  const results: Compiled[] = [];
  for (const target of options.targets) {
    const name = artifactName(target);
    const output = `${outDir.replace(/\/+$/, "")}/${name}`;
    await removeWithTemps(output);
    log(`compile ${target.triple} → ${output}${denortBin ? ` (DENORT_BIN=${denortBin})` : ""}`);
    const ran = await run([
      "compile",
      "-A",
      "--target",
      target.triple,
      ...excludes.flatMap((path) => ["--exclude", path]),
      "--output",
      output,
      ENTRY,
    ], { cwd: ROOT });
    let error: string | null = null;
    if (ran.code !== 0) {
      error = explainCompileFailure(target, ran.output, denortBin);
    } else if (target.triple === Deno.build.target) {
      error = await smokeExecutable(output, target);
    }
    if (error) await removeWithTemps(output);
    log(error ?? `compiled ${target.triple} → ${name} in ${ran.ms} ms`);
    results.push({ target, artifact: error ? null : name, error, ms: ran.ms });
  }
  return results;
}

/** Removes `path` and the `path.tmp-*` files an aborted `deno compile` leaves. */
async function removeWithTemps(path: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  const base = path.slice(path.lastIndexOf("/") + 1);
  await Deno.remove(path).catch(() => {});
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(`${base}.tmp-`)) await Deno.remove(`${dir}/${entry.name}`);
  }
}

/** Runs a host-target executable's `version`; returns why it is unusable, or null. */
async function smokeExecutable(path: string, target: Target): Promise<string | null> {
  const child = new Deno.Command(path, {
    args: ["version"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (out.code === 0 && text.includes(VERSION)) return null;
  return `The executable for ${target.triple} does not run the program ("${path} version" ` +
    `exited ${out.code}): the runtime from DENORT_BIN is probably a full deno binary rather ` +
    `than denort.\n${text.trim().slice(0, 600)}`;
}

const USAGE = `Usage: deno run -A scripts/build.ts <command> [options]

Commands:
  bundle    dist/ironmesh.js: one file, run with "deno run -A ironmesh.js"
  compile   dist/ironmesh-<os>-<arch> executables (deno compile; needs denort)
  all       bundle, then compile

Options:
  --out-dir DIR        output directory (default dist)
  --target T           compile only T (repeatable or comma-separated): a triple such
                       as x86_64-unknown-linux-gnu, or linux-x86_64, darwin-aarch64, …
                       (default: ${TARGETS.map((t) => `${t.os}-${t.arch}`).join(", ")})
  --sourcemap KIND     bundle with a source map: linked, inline or external
  --no-smoke           skip running the bundle from an empty directory

Environment:
  DENORT_BIN           a denort binary for the one --target being compiled, for machines
                       that cannot download it from dl.deno.land
`;

/** Runs the command line; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        "out-dir": { type: "string", default: "dist" },
        target: { type: "string", multiple: true },
        sourcemap: { type: "string" },
        "no-smoke": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const command = positionals[0];
  if (positionals.length !== 1 || !["bundle", "compile", "all"].includes(command!)) {
    console.error(
      `${command ? `Unknown command "${positionals.join(" ")}"` : "Missing command"}` +
        `\n\n${USAGE}`,
    );
    return 2;
  }
  const sourcemap = values.sourcemap;
  if (sourcemap !== undefined && !["linked", "inline", "external"].includes(sourcemap)) {
    console.error(`Invalid --sourcemap "${sourcemap}": use linked, inline or external`);
    return 2;
  }
  let targets: Target[];
  try {
    const requested = (values.target ?? []).flatMap((t) => t.split(",")).filter(Boolean);
    targets = requested.length ? [...new Set(requested.map(parseTarget))] : [...TARGETS];
    if (values.target && command === "bundle") {
      throw new UsageError(`--target applies to compile, not to bundle`);
    }
  } catch (error) {
    console.error((error as Error).message);
    return error instanceof UsageError ? 2 : 1;
  }
  const outDir = values["out-dir"].startsWith("/")
    ? values["out-dir"]
    : `${ROOT}${values["out-dir"]}`;
  let failed = false;
  try {
    if (command === "bundle" || command === "all") {
      const bundle = await buildBundle({
        outDir,
        ...(sourcemap ? { sourcemap: sourcemap as NonNullable<BundleOptions["sourcemap"]> } : {}),
        smoke: !values["no-smoke"],
      });
      const mb = (bundle.bytes / 1e6).toFixed(2);
      console.error(
        `bundle ${bundle.file}: ${mb} MB in ${bundle.bundleMs} ms` +
          (bundle.smokeMs === null ? "" : `; runs alone (version in ${bundle.smokeMs} ms)`),
      );
      const warnings = bundle.findings.filter((f) => f.level === "warning");
      if (warnings.length) {
        console.error(
          `bundle notes (code that works only if never reached, or resolves ` +
            `next to the bundle):\n${formatFindings(warnings)}`,
        );
      }
    }
    if (command === "compile" || command === "all") {
      const results = await compileTargets({ outDir, targets });
      const bad = results.filter((r) => !r.artifact);
      if (bad.length) {
        failed = true;
        console.error(`Not compiled: ${bad.map((r) => r.target.triple).join(", ")}`);
      }
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(error.message);
      return 2;
    }
    if (!(error instanceof BuildError)) throw error;
    console.error(error.message);
    failed = true;
  }
  // Sums over every release artifact now in the directory: this run's, plus a bundle (or
  // executables) from an earlier run. Failed targets' stale files were removed above.
  const artifacts = await releaseArtifacts(outDir);
  const sums = `${outDir.replace(/\/+$/, "")}/SHA256SUMS`;
  if (artifacts.length) {
    await writeSums(outDir, artifacts);
    console.error(`wrote ${sums} (${artifacts.join(", ")})`);
  } else {
    await Deno.remove(sums).catch(() => {});
  }
  if (failed) console.error(`${command} failed: see above`);
  return failed ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
