/**
 * The server's {@link InstallSource}: `install.sh` (embedded at build time, so
 * the bundle and a compiled executable carry it too), the agent skeleton it
 * writes, and this program in the form a host can run:
 *
 * - a compiled executable hands out itself, named for its own platform only;
 * - run with Deno, from the bundle or from a checkout, it hands out the bundle
 *   behind {@link LAUNCHER}, under every platform's name, since the host's
 *   Deno does the platform part. From a checkout the bundle is built on the
 *   first request (`scripts/build.ts bundle`, seconds) and kept in memory.
 */
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import installScript from "../install.sh" with { type: "text" };
import type { InstallArtifact, InstallSource } from "../api/install.ts";
import { UnavailableError } from "../core/errors.ts";

/**
 * The first two lines of a bundle handed out to hosts: valid as `sh` and as
 * JavaScript. `sh` runs `//bin/true` (that is `/bin/true`) and then `exec`s
 * Deno on this same file, so the process a service manager or `kill` sees is
 * the program itself and signals reach it; JavaScript sees a hashbang and a
 * comment. `--ext=js` because the installed file has no extension,
 * `--no-config` so a `deno.json` above the working directory changes nothing.
 */
export const LAUNCHER = '#!/bin/sh\n//bin/true; exec "${IRONMESH_DENO:-deno}" run -A ' +
  '--no-config --ext=js "$0" "$@"\n';

const PLATFORMS = ["linux-x86_64", "linux-aarch64", "darwin-x86_64", "darwin-aarch64"] as const;

/** The agent skeleton: the here-document of `agent_yaml()` in `install.sh`, written once there. */
export function agentSkeleton(script: string): string {
  const match = script.match(/\nagent_yaml\(\) \{\n {2}cat <<'EOF'\n([\s\S]*?\n)EOF\n/);
  if (!match) throw new Error("install.sh has no agent_yaml() here-document");
  return match[1]!;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function inMemory(name: string, bytes: Uint8Array): InstallArtifact {
  return {
    name,
    sha256: sha256(bytes),
    size: bytes.length,
    open: () => Promise.resolve(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()),
  };
}

/** The bundle behind the launcher, under every platform's name. */
export function launcherArtifacts(bundle: Uint8Array): InstallArtifact[] {
  const header = new TextEncoder().encode(LAUNCHER);
  const already = bundle.length >= header.length &&
    header.every((b, i) => bundle[i] === b);
  let bytes = bundle;
  if (!already) {
    bytes = new Uint8Array(header.length + bundle.length);
    bytes.set(header);
    bytes.set(bundle, header.length);
  }
  const shared = inMemory("", bytes);
  return PLATFORMS.map((p) => ({ ...shared, name: `ironmesh-${p}` }));
}

async function executableArtifact(path: string): Promise<InstallArtifact[]> {
  const hash = createHash("sha256");
  let size = 0;
  {
    using file = await Deno.open(path);
    for await (const chunk of file.readable) {
      hash.update(chunk);
      size += chunk.length;
    }
  }
  const platform = `${Deno.build.os}-${Deno.build.arch}`;
  return [{
    name: `ironmesh-${platform}`,
    sha256: hash.digest("hex"),
    size,
    open: async () => (await Deno.open(path)).readable,
  }];
}

/**
 * Builds the bundle from the checkout whose `cmd/main.ts` is `mainModule`,
 * with the release build's own script. (Not `import.meta.url`: the bundle
 * scan flags that as a path into the source tree.)
 */
async function buildBundle(mainModule: string): Promise<Uint8Array> {
  const root = fileURLToPath(new URL("..", mainModule));
  const outDir = await Deno.makeTempDir({ prefix: "ironmesh-install-bundle-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}scripts/build.ts`, "bundle", "--out-dir", outDir, "--no-smoke"],
      cwd: root,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) {
      throw new UnavailableError(
        `Cannot build the bundle to hand out: scripts/build.ts bundle exited ${out.code}: ${
          new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" ")
        }`,
      );
    }
    return await Deno.readFile(`${outDir}/ironmesh.js`);
  } finally {
    await Deno.remove(outDir, { recursive: true }).catch(() => {});
  }
}

/** How this process runs, which decides what it hands out. */
export type RunMode = "compiled" | "bundle" | "checkout";

/** The run mode of a process whose main module is `mainModule`. */
export function runMode(mainModule: string): RunMode {
  // `deno compile` runs the program from a virtual directory named after it.
  if (mainModule.includes("/deno-compile-")) return "compiled";
  return mainModule.endsWith(".ts") ? "checkout" : "bundle";
}

/** The install source of this process. Nothing is read or built until a host asks. */
export function installSource(mainModule: string = Deno.mainModule): InstallSource {
  let artifacts: Promise<InstallArtifact[]> | undefined;
  const make = async (): Promise<InstallArtifact[]> => {
    switch (runMode(mainModule)) {
      case "compiled":
        return await executableArtifact(Deno.execPath());
      case "bundle":
        return launcherArtifacts(await Deno.readFile(new URL(mainModule)));
      case "checkout":
        return launcherArtifacts(await buildBundle(mainModule));
    }
  };
  return {
    script: installScript,
    agentConfig: agentSkeleton(installScript),
    artifacts: () => {
      // A failed build is not remembered: the next request tries again.
      artifacts ??= make().catch((error) => {
        artifacts = undefined;
        throw error;
      });
      return artifacts;
    },
  };
}
