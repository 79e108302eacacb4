/** `bundle`: one JavaScript file with every npm package inlined, checked to run on its own. */
import { VERSION } from "../core/version.ts";
import { type Finding, formatFindings, inspectBundle } from "./build_inspect.ts";
import { BuildError, isolatedTempDir, run } from "./build_process.ts";
import { BUNDLE_NAME, ENTRY, ROOT } from "./build_targets.ts";

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
