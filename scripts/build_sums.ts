/** The release's `SHA256SUMS`, over the artifacts a build leaves in its output directory. */
import { createHash } from "node:crypto";
import { artifactName, BUNDLE_NAME, TARGETS } from "./build_targets.ts";

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
