/**
 * Installing from the server itself: `install.sh`, the program for a host's
 * platform with its `SHA256SUMS`, and the agent configuration skeleton. All
 * public: a fresh host has no credentials, the artifacts are no secret, and
 * what makes a host a member is the join token. The line that runs these
 * trusts only the root the token pins (`ironmesh token create --print-install`,
 * `cmd/install_line.ts`), so what is served here arrives unaltered.
 */
import { NotFoundError } from "../core/errors.ts";
import type { ApiContext } from "./app.ts";
import { z } from "zod";
import { pathParam, type RawBody, resource } from "./operation.ts";

/** One downloadable program, e.g. `ironmesh-linux-x86_64`. */
export interface InstallArtifact {
  /** `ironmesh-<os>-<arch>`, the name `install.sh` asks for. */
  name: string;
  /** Lower-case hex SHA-256 of its bytes. */
  sha256: string;
  size: number;
  /** Its bytes, read anew for each download (an executable is too big to keep). */
  open(): Promise<ReadableStream<Uint8Array>>;
}

/** What a host installs from this server (`cmd/install_artifacts.ts` makes it). */
export interface InstallSource {
  /** The repository's `install.sh`, byte for byte. */
  script: string;
  /** The agent configuration skeleton `install.sh` writes to `/etc/ironmesh/agent.yaml`. */
  agentConfig: string;
  /** The programs this server can hand out, by platform; built or hashed on first use. */
  artifacts(): Promise<InstallArtifact[]>;
}

const ARTIFACT = {
  ...pathParam(
    "artifact",
    z.string(),
    "`ironmesh-<os>-<arch>`: `linux` or `darwin`, `x86_64` or `aarch64`",
  ),
  unchecked: true,
};

const text = (mediaType: string): RawBody => ({ mediaType, schema: { type: "string" } });

/** The install routes. */
export const INSTALL = resource({
  prefix: "/",
  operations: {
    getInstallScript: {
      method: "get",
      path: "/install.sh",
      tag: "Install",
      summary: "The installer",
      description:
        "`install.sh`, as in the repository. Run it with `--base-url https://SERVER/install` to install this server's program; `ironmesh token create --kind join --print-install` prints the whole line.",
      access: "public",
      replies: [{
        status: 200,
        description: "A POSIX shell script",
        body: text("text/x-shellscript"),
      }],
    },
    getInstallSums: {
      method: "get",
      path: "/install/SHA256SUMS",
      tag: "Install",
      summary: "Checksums of the programs",
      description:
        "One `HEX  NAME` line (`sha256sum` format) per program this server hands out. Computed on first use: from a source checkout that first builds the bundle (seconds).",
      access: "public",
      replies: [{ status: 200, description: "The checksums", body: text("text/plain") }],
    },
    getInstallAgentConfig: {
      method: "get",
      path: "/install/agent.yaml",
      tag: "Install",
      summary: "The agent configuration skeleton",
      description: "What `install.sh agent` writes to `/etc/ironmesh/agent.yaml`: no services yet.",
      access: "public",
      replies: [{
        status: 200,
        description: "Agent configuration",
        body: text("application/yaml"),
      }],
    },
    getInstallArtifact: {
      method: "get",
      path: "/install/{artifact}",
      tag: "Install",
      summary: "The program for a platform",
      description:
        "A compiled server hands out its own executable, for its own platform only. A server run with Deno (from a checkout or the bundle) hands out the bundle behind a two-line shell launcher, for every platform: such a host needs Deno 2.9.6 on `PATH` (or `IRONMESH_DENO`, the path of a `deno` binary).",
      access: "public",
      params: [ARTIFACT],
      replies: [{
        status: 200,
        description: "The program",
        body: {
          mediaType: "application/octet-stream",
          schema: { type: "string", contentMediaType: "application/octet-stream" },
        },
      }],
      errors: { 404: "This server has no program for that platform" },
    },
  },
});

/** The sub-app of {@link INSTALL}. */
export function installApp({ deps, resourceApp }: ApiContext) {
  const source = (): InstallSource => {
    if (!deps.install) throw new NotFoundError("This server serves no install artifacts");
    return deps.install;
  };
  return resourceApp(INSTALL, {
    getInstallScript: (c) =>
      c.body(source().script, 200, { "content-type": "text/x-shellscript; charset=utf-8" }),
    getInstallSums: async (c) => {
      const lines = (await source().artifacts()).map((a) => `${a.sha256}  ${a.name}\n`);
      return c.body(lines.join(""), 200, { "content-type": "text/plain; charset=utf-8" });
    },
    getInstallAgentConfig: (c) =>
      c.body(source().agentConfig, 200, { "content-type": "application/yaml; charset=utf-8" }),
    getInstallArtifact: async (c) => {
      const name = c.req.param("artifact")!;
      const artifacts = await source().artifacts();
      const artifact = artifacts.find((a) => a.name === name);
      if (!artifact) {
        throw new NotFoundError(
          `This server has no program "${name}": it hands out ${
            artifacts.map((a) => `"${a.name}"`).join(", ")
          }; install others with install.sh --binary FILE or --base-url of a release`,
        );
      }
      return c.body(await artifact.open(), 200, {
        "content-type": "application/octet-stream",
        "content-length": String(artifact.size),
      });
    },
  });
}
