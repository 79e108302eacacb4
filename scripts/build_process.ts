/** How the release build runs Deno and where its smoke runs may run: outside any project. */

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

export async function run(args: string[], options: { cwd: string; env?: Record<string, string> }) {
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

/** A build step that failed; `message` says which and why. */
export class BuildError extends Error {
  override name = "BuildError";
}
