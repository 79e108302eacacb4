/** `compile`: one `deno compile` executable per target, each failure explained. */
import { VERSION } from "../core/version.ts";
import { run } from "./build_process.ts";
import { artifactName, ENTRY, ROOT, type Target, UsageError } from "./build_targets.ts";

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
      `a package ships a file that trips it (see compileExcludes() in scripts/build_compile.ts).`;
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
