/**
 * The import-layer check of the quality gate (`deno task layers`): every
 * import between our files must point inward, `cmd → api/xds/agent →
 * registry/ca/policy/auth/client → store → core`, so the architecture in
 * docs/architecture.md cannot rot one convenient import at a time.
 *
 * The imports come from Deno's own module graph (`deno info --json`), not from
 * reading the sources: the graph resolves every specifier as the runtime and
 * the type checker do (import map, `import type`, re-exports, dynamic
 * `import()` of a literal), so no import syntax can slip past a scanner of
 * ours, and there is no scanner to keep.
 *
 * Run: `deno run -A scripts/check_layers.ts [ROOT]`; exits 1 listing each problem.
 */
import { posix } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

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

/** Folders that hold no sources of ours. */
const SKIPPED_DIRS: ReadonlySet<string> = new Set(["node_modules", "dist"]);

/** One import that breaks a rule. */
export interface Violation {
  file: string;
  /** The specifier as written; `""` for a problem of the file itself. */
  specifier: string;
  /** 1-based line of the specifier. */
  line: number;
  reason: string;
}

/** The top-level folder of a repository-relative path; `""` for a file at the top. */
function folderOf(path: string): string {
  const slash = path.indexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

/**
 * True for test code: the files `deno test` picks up by default and the
 * helpers beside them, named `_testing.ts` or `_<topic>_testing.ts`.
 */
export function isTestCode(path: string): boolean {
  return /(?:^|\/|[._])test\.(?:m?ts|tsx)$/.test(path) ||
    /(?:^|\/)_(?:\w+_)?testing\.ts$/.test(path);
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
  if (UNRESTRICTED.has(fromFolder)) return undefined;
  if (isTestCode(to) && !isTestCode(from)) return "production code may not import test code";
  if (fromFolder === toFolder || toFolder === "core") return undefined;
  // Tests may reach sideways (a registry test may use a CA helper) but never outward.
  const allowed = isTestCode(from) ? toRank <= fromRank : toRank < fromRank;
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

/** Where one import of the module graph resolved to. */
interface GraphResolution {
  specifier?: string;
  span?: { start: { line: number } };
}

/** One import of a module, as `deno info --json` reports it. */
export interface GraphDependency {
  /** The specifier as written. */
  specifier: string;
  code?: GraphResolution;
  /** Set instead of `code` for `import type`. */
  type?: GraphResolution;
}

/** One module, as `deno info --json` reports it. */
export interface GraphModule {
  specifier: string;
  error?: string;
  dependencies?: GraphDependency[];
}

/**
 * The module graph of `files` (repository-relative) as Deno resolves it with
 * the repository's `deno.json`: one `deno info --json` over a temporary entry
 * module that imports every file.
 */
export async function moduleGraph(root: string, files: readonly string[]): Promise<GraphModule[]> {
  const dir = await Deno.makeTempDir({ prefix: "check_layers_" });
  try {
    const entry = posix.join(dir, "entry.ts");
    const lines = files.map((file) => {
      const url = pathToFileURL(posix.join(root, file)).href;
      return `import ${JSON.stringify(url)};\n`;
    });
    await Deno.writeTextFile(entry, lines.join(""));
    const config = posix.join(root, "deno.json");
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", ...(await isFile(config) ? ["--config", config] : []), entry],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (!output.success) {
      throw new Error(`deno info failed: ${new TextDecoder().decode(output.stderr).trim()}`);
    }
    const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as { modules: GraphModule[] };
    const entryUrl = pathToFileURL(entry).href;
    return graph.modules.filter((m) => m.specifier !== entryUrl);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function isFile(path: string): Promise<boolean> {
  return Deno.stat(path).then((info) => info.isFile, () => false);
}

/** The repository-relative path of a `file:` URL, or `undefined` for a package or a remote module. */
function ourPath(root: string, url: string): string | undefined {
  if (!url.startsWith("file:")) return undefined;
  const path = posix.relative(root, fileURLToPath(url));
  return path.split("/").some((part) => SKIPPED_DIRS.has(part)) ? undefined : path;
}

/** Every broken rule among the imports of our modules in `graph`, by file and line. */
export function checkGraph(root: string, graph: readonly GraphModule[]): Violation[] {
  const violations: Violation[] = [];
  for (const module of graph) {
    const file = ourPath(root, module.specifier);
    if (file === undefined || file.startsWith("../")) continue;
    if (module.error !== undefined) {
      violations.push({ file, specifier: "", line: 1, reason: module.error });
      continue;
    }
    for (const dependency of module.dependencies ?? []) {
      const resolved = dependency.code ?? dependency.type;
      const line = (resolved?.span?.start.line ?? 0) + 1;
      let reason = specifierProblem(dependency.specifier);
      const to = resolved?.specifier === undefined ? undefined : ourPath(root, resolved.specifier);
      if (reason === undefined && to !== undefined) reason = importProblem(file, to);
      if (reason !== undefined) {
        violations.push({ file, specifier: dependency.specifier, line, reason });
      }
    }
  }
  return violations.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
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

/** The result of {@link checkLayers}. */
export interface LayerReport {
  files: number;
  imports: number;
  violations: Violation[];
}

/** Checks every TypeScript source below `root` (a checkout with its `deno.json`). */
export async function checkLayers(root: string): Promise<LayerReport> {
  const files = await sourceFiles(root);
  const violations: Violation[] = [];
  for (const file of files) {
    const folder = folderOf(file);
    if (LAYERS[folder] === undefined) {
      violations.push({ file, specifier: "", line: 1, reason: noLayer(folder) });
    }
  }
  const graph = await moduleGraph(root, files);
  const imports = graph
    .filter((m) => ourPath(root, m.specifier) !== undefined)
    .reduce((n, m) => n + (m.dependencies?.length ?? 0), 0);
  violations.push(...checkGraph(root, graph));
  return { files: files.length, imports, violations };
}

async function main(root: string): Promise<number> {
  const { files, imports, violations } = await checkLayers(root);
  if (violations.length === 0) {
    console.log(`Layers OK: ${imports} imports in ${files} files point inward`);
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
  const root = Deno.args[0] ?? fileURLToPath(new URL("..", import.meta.url));
  Deno.exit(await main(posix.resolve(root)));
}
