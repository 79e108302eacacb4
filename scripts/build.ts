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
 *
 * This file is the command line and the steps' public face; each step is its
 * own file beside it: the targets (`build_targets.ts`), the bundle
 * (`build_bundle.ts`) and its scan (`build_inspect.ts`), the executables
 * (`build_compile.ts`), the sums (`build_sums.ts`), and how Deno is run
 * (`build_process.ts`).
 */
import { parseArgs } from "node:util";
import { buildBundle, type BundleOptions } from "./build_bundle.ts";
import { compileTargets } from "./build_compile.ts";
import { formatFindings } from "./build_inspect.ts";
import { BuildError } from "./build_process.ts";
import { releaseArtifacts, writeSums } from "./build_sums.ts";
import { parseTarget, ROOT, type Target, TARGETS, UsageError } from "./build_targets.ts";

export { buildBundle, type Bundle, type BundleOptions, smokeBundle } from "./build_bundle.ts";
export {
  type Compiled,
  compileExcludes,
  type CompileOptions,
  compileTargets,
  explainCompileFailure,
} from "./build_compile.ts";
export { type Finding, formatFindings, inspectBundle } from "./build_inspect.ts";
export { BuildError, isolatedTempDir, projectAbove } from "./build_process.ts";
export { releaseArtifacts, sha256File, writeSums } from "./build_sums.ts";
export {
  artifactName,
  BUNDLE_NAME,
  ENTRY,
  parseTarget,
  ROOT,
  type Target,
  TARGETS,
  UsageError,
} from "./build_targets.ts";

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
