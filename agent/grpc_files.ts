/**
 * What proxyless gRPC applications on the host read: the xDS bootstrap
 * (`DATA_DIR/grpc-bootstrap.json`, its path in `agent.json` as
 * `grpcBootstrap`) and the files its `file_watcher` certificate provider
 * names, in `DATA_DIR/grpc/`:
 *
 * - `credentials.pem`: the workload key and certificate chain in one file
 *   (why one file: `core/grpc_bootstrap.ts`), mode 0600, or 0640 with the
 *   configured `proxyless.keyGroup`
 * - `bundle.pem`: the trust bundle, mode 0644
 *
 * They are copies of the agent's identity (`identity/` stays 0700, the
 * agent's own), rewritten after every renewal and bundle change. Every file
 * is replaced atomically (a temporary file renamed over it), so gRPC, which
 * re-reads them every refresh interval, never reads half a file.
 */
import { grpcBootstrap } from "../core/grpc_bootstrap.ts";
import type { HostPort } from "../core/address.ts";
import { InvalidError } from "../core/errors.ts";
import type { Labels } from "../core/labels.ts";
import type { Identity } from "./identity.ts";

/** Where the bootstrap goes. */
export function grpcBootstrapPath(dataDir: string): string {
  return `${dataDir}/grpc-bootstrap.json`;
}

/** Where the certificate files go. */
export function grpcFilesDir(dataDir: string): string {
  return `${dataDir}/grpc`;
}

/** Options of {@link GrpcFiles}. */
export interface GrpcFilesOptions {
  dataDir: string;
  node: string;
  labels: Labels;
  /** How often applications re-read the files, in ms. */
  refreshIntervalMs: number;
  /** A group (name or gid) that may read the key; default: the agent's user only. */
  keyGroup?: string | number;
  /** Where group names are looked up. Default: `/etc/group`. */
  groupFile?: string;
}

const isWindows = Deno.build.os === "windows";

/** The gid of `group` (a name from `groupFile`, or a number). */
export async function resolveGroup(group: string | number, groupFile: string): Promise<number> {
  if (typeof group === "number") return group;
  let text: string;
  try {
    text = await Deno.readTextFile(groupFile);
  } catch (error) {
    throw new InvalidError(
      `Cannot resolve proxyless.keyGroup "${group}": cannot read "${groupFile}": ${
        (error as Error).message
      }`,
    );
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new InvalidError(`Invalid proxyless.keyGroup "${group}": no such group in "${groupFile}"`);
}

/** Writes `text` to a temporary file with `mode` (and `gid`), then renames it over `path`. */
async function replace(path: string, text: string, mode: number, gid?: number): Promise<void> {
  const temp = `${path}.tmp`;
  await Deno.writeTextFile(temp, text, { mode });
  if (!isWindows) {
    // The mode of `writeTextFile` applies only to a file it creates.
    await Deno.chmod(temp, mode);
    if (gid !== undefined) await Deno.chown(temp, null, gid);
  }
  await Deno.rename(temp, path);
}

/** The bootstrap and certificate files of one agent; see the module comment. */
export class GrpcFiles {
  readonly #options: GrpcFilesOptions;
  #gid: number | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(options: GrpcFilesOptions) {
    this.#options = options;
  }

  /** The bootstrap's path. */
  get bootstrapPath(): string {
    return grpcBootstrapPath(this.#options.dataDir);
  }

  /**
   * Writes the certificate files from `identity` and the bootstrap naming
   * the local xDS endpoint `xds`. Writes go one at a time, in call order.
   */
  write(identity: Identity, xds: HostPort): Promise<void> {
    const next = this.#writing.then(() => this.#write(identity, xds));
    this.#writing = next.catch(() => {});
    return next;
  }

  async #write(identity: Identity, xds: HostPort): Promise<void> {
    const o = this.#options;
    if (o.keyGroup !== undefined && this.#gid === undefined) {
      this.#gid = await resolveGroup(o.keyGroup, o.groupFile ?? "/etc/group");
    }
    const gid = this.#gid;
    const dir = grpcFilesDir(o.dataDir);
    const dirMode = gid === undefined ? 0o700 : 0o750;
    await Deno.mkdir(dir, { recursive: true, mode: dirMode });
    if (!isWindows) {
      await Deno.chmod(dir, dirMode);
      if (gid !== undefined) await Deno.chown(dir, null, gid);
    }
    const credentialsFile = `${dir}/credentials.pem`;
    const bundleFile = `${dir}/bundle.pem`;
    const pem = (text: string) => text.endsWith("\n") ? text : `${text}\n`;
    // The bundle first: a new leaf may be signed by a root only the new bundle holds.
    await replace(bundleFile, pem(identity.bundlePem), 0o644, gid);
    await replace(
      credentialsFile,
      pem(identity.keyPem) + pem(identity.certPem),
      gid === undefined ? 0o600 : 0o640,
      gid,
    );
    const bootstrap = grpcBootstrap({
      node: o.node,
      labels: o.labels,
      xds,
      credentialsFile,
      bundleFile,
      refreshIntervalMs: o.refreshIntervalMs,
    });
    await replace(this.bootstrapPath, JSON.stringify(bootstrap, null, 2) + "\n", 0o644, gid);
  }
}
