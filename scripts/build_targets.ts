/** What the release build produces: the bundle, and one executable per `deno compile` target. */
import { fileURLToPath } from "node:url";

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
