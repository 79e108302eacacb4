/**
 * The agent's identity on disk, in `DATA_DIR/identity/` (mode 0700):
 *
 * - `key.pem`: the private key, PKCS#8 PEM, mode 0600; never leaves the host
 * - `cert.pem`: the certificate chain, leaf first, then the intermediate
 * - `bundle.pem`: the roots the agent trusts for the server
 * - `identity.json`: `{ node, identity, server, notAfter, bundleFingerprint }`
 *
 * Each file is replaced atomically (write a temporary file, then rename), so
 * a reader never sees half a file. Key and certificate must also change
 * together: a new key beside the old certificate fails every handshake, and
 * an agent that cannot connect cannot renew. So they are staged as
 * `key.pem.next` and `cert.pem.next`, the latter written last as the commit
 * mark, then renamed into place; a crash between the two renames is finished
 * by the next {@link loadIdentity}.
 */
import { InvalidError } from "../core/errors.ts";
import { describeLeaf, keyMatchesCertificate, type LeafInfo, parseCertificates } from "./pki.ts";

/** An identity the agent can use: the PEM texts and what it knows about them. */
export interface Identity {
  /** The node name, the certificate's CN. */
  node: string;
  /** The SPIFFE ID, the certificate's URI SAN. */
  identity: string;
  /** Base URL of the server the agent enrolled with. */
  server: string;
  /** PEM PKCS#8 private key. */
  keyPem: string;
  /** PEM chain, leaf first. */
  certPem: string;
  /** PEM roots trusted for the server. */
  bundlePem: string;
  /** The server's fingerprint of the bundle, compared with what heartbeats report. */
  bundleFingerprint: string;
  /** The leaf's serial and validity. */
  leaf: LeafInfo;
  /**
   * When the agent received the certificate, ms since the epoch; known only
   * for one obtained since the agent started (it times the renewal).
   */
  receivedAt?: number;
}

/** What `identity.json` holds. */
interface IdentityFile {
  node: string;
  identity: string;
  server: string;
  notAfter: string;
  bundleFingerprint: string;
}

/** The result of {@link loadIdentity}. */
export type LoadedIdentity =
  | { kind: "none" }
  | { kind: "ok"; identity: Identity }
  /** Files exist but cannot be used; `reason` says why, for the error message. */
  | { kind: "broken"; reason: string };

/** The identity directory inside the data directory. */
export function identityDir(dataDir: string): string {
  return `${dataDir}/identity`;
}

const isWindows = Deno.build.os === "windows";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Writes `text` to `path` and flushes it to the disk before returning. */
async function writeDurably(path: string, text: string, mode: number): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  const file = await Deno.open(path, { write: true, create: true, truncate: true, mode });
  try {
    for (let written = 0; written < bytes.length;) {
      written += await file.write(bytes.subarray(written));
    }
    await file.sync();
  } finally {
    file.close();
  }
  // `mode` applies only when the file is created; a leftover keeps its own.
  if (!isWindows) await Deno.chmod(path, mode);
}

async function replaceFile(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.tmp`;
  await writeDurably(temp, text, mode);
  await Deno.rename(temp, path);
}

async function ensureIdentityDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  if (!isWindows) await Deno.chmod(dir, 0o700);
}

/** Finishes a key/certificate swap interrupted between its renames, or drops an unfinished one. */
async function recover(dir: string): Promise<void> {
  if (await exists(`${dir}/cert.pem.next`)) {
    if (await exists(`${dir}/key.pem.next`)) {
      await Deno.rename(`${dir}/key.pem.next`, `${dir}/key.pem`);
    }
    await Deno.rename(`${dir}/cert.pem.next`, `${dir}/cert.pem`);
  }
  for (const leftover of ["key.pem.next", "cert.pem.next.tmp"]) {
    await Deno.remove(`${dir}/${leftover}`).catch(() => {});
  }
}

function identityFile(identity: Identity): IdentityFile {
  return {
    node: identity.node,
    identity: identity.identity,
    server: identity.server,
    notAfter: new Date(identity.leaf.notAfter).toISOString(),
    bundleFingerprint: identity.bundleFingerprint,
  };
}

/**
 * Saves a whole identity: key and certificate together (see the module
 * comment), then the bundle, then `identity.json`. The bundle is written
 * before the fingerprint that names it, so the fingerprint on disk never
 * claims roots that are not there.
 */
export async function saveIdentity(dataDir: string, identity: Identity): Promise<void> {
  const dir = identityDir(dataDir);
  await ensureIdentityDir(dir);
  await writeDurably(`${dir}/key.pem.next`, identity.keyPem, 0o600);
  await writeDurably(`${dir}/cert.pem.next.tmp`, identity.certPem, 0o644);
  await Deno.rename(`${dir}/cert.pem.next.tmp`, `${dir}/cert.pem.next`);
  await Deno.rename(`${dir}/key.pem.next`, `${dir}/key.pem`);
  await Deno.rename(`${dir}/cert.pem.next`, `${dir}/cert.pem`);
  await saveBundle(dataDir, identity);
}

/** Saves a new trust bundle and `identity.json`; key and certificate are unchanged. */
export async function saveBundle(dataDir: string, identity: Identity): Promise<void> {
  const dir = identityDir(dataDir);
  await ensureIdentityDir(dir);
  await replaceFile(`${dir}/bundle.pem`, identity.bundlePem, 0o644);
  await replaceFile(
    `${dir}/identity.json`,
    JSON.stringify(identityFile(identity), null, 2) + "\n",
    0o600,
  );
}

function isIdentityFile(value: unknown): value is IdentityFile {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return ["node", "identity", "server", "notAfter", "bundleFingerprint"].every((k) =>
    typeof v[k] === "string"
  );
}

/**
 * Reads the identity saved in the data directory. Validity is read from the
 * certificate itself, not from `identity.json`, so the two cannot disagree.
 */
export async function loadIdentity(dataDir: string): Promise<LoadedIdentity> {
  const dir = identityDir(dataDir);
  if (!(await exists(dir))) return { kind: "none" };
  await recover(dir);
  const read = async (name: string): Promise<string | undefined> => {
    try {
      return await Deno.readTextFile(`${dir}/${name}`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  };
  const [json, keyPem, certPem, bundlePem] = await Promise.all(
    ["identity.json", "key.pem", "cert.pem", "bundle.pem"].map(read),
  );
  if (json === undefined && keyPem === undefined && certPem === undefined) return { kind: "none" };
  const missing = [
    ["identity.json", json],
    ["key.pem", keyPem],
    ["cert.pem", certPem],
    ["bundle.pem", bundlePem],
  ].filter(([, text]) => text === undefined).map(([name]) => name);
  if (missing.length > 0) {
    return { kind: "broken", reason: `${missing.join(", ")} missing in "${dir}"` };
  }
  let meta: unknown;
  try {
    meta = JSON.parse(json!);
  } catch {
    meta = undefined;
  }
  if (!isIdentityFile(meta)) {
    return { kind: "broken", reason: `"${dir}/identity.json" is not a valid identity file` };
  }
  let leaf: LeafInfo;
  try {
    const chain = parseCertificates(certPem!, `certificate "${dir}/cert.pem"`);
    parseCertificates(bundlePem!, `trust bundle "${dir}/bundle.pem"`);
    if (!(await keyMatchesCertificate(keyPem!, chain[0]!))) {
      return { kind: "broken", reason: `"${dir}/key.pem" does not belong to "${dir}/cert.pem"` };
    }
    leaf = describeLeaf(chain[0]!);
  } catch (error) {
    if (error instanceof InvalidError) return { kind: "broken", reason: error.message };
    throw error;
  }
  return {
    kind: "ok",
    identity: {
      node: meta.node,
      identity: meta.identity,
      server: meta.server,
      keyPem: keyPem!,
      certPem: certPem!,
      bundlePem: bundlePem!,
      bundleFingerprint: meta.bundleFingerprint,
      leaf,
    },
  };
}
