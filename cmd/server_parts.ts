/**
 * The parts `startServer()` (`server_start.ts`) builds from the server's
 * configuration: the store, the CA, the admin token, the serving
 * certificate and the plain HTTP listener, and how ADS peers are named.
 */
import { isIP } from "node:net";
import { join } from "node:path";
import type { TokenService } from "../auth/tokens.ts";
import type { TlsMaterial } from "../api/tls_listener.ts";
import { CertificateAuthority } from "../ca/authority.ts";
import { JoinTokens } from "../ca/join_tokens.ts";
import { DirectoryMaterial, StoreMaterial } from "../ca/material.ts";
import type { HostPort } from "../core/address.ts";
import type { Clock } from "../core/clock.ts";
import { InvalidError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import type { ServerConfig } from "../core/server_config.ts";
import { spiffeId } from "../core/spiffe_id.ts";
import {
  CERTIFICATE_PROVIDER_METADATA,
  GRPC_CERTIFICATE_PROVIDER,
} from "../core/grpc_bootstrap.ts";
import { CA_DIR, TOKEN_KEY } from "../store/ca_files.ts";
import { isPostgresUrl, openPostgresStore } from "../store/postgres.ts";
import { openSqliteStore } from "../store/sqlite.ts";
import type { Store } from "../store/store.ts";
import type { NodeInfo, ProxyPeer } from "../xds/ads_server.ts";

/** The store's meta key that holds the id of the admin token in `admin.token`. */
const ADMIN_TOKEN_META = "admin_token_id";

/** The CA key passphrase: the file `--ca-key-passphrase-file` names, else `IRONMESH_CA_KEY_PASSPHRASE`. */
async function caKeyPassphrase(config: ServerConfig): Promise<string | undefined> {
  if (!config.caKeyPassphraseFile) return Deno.env.get("IRONMESH_CA_KEY_PASSPHRASE") || undefined;
  const text = await Deno.readTextFile(config.caKeyPassphraseFile).catch((error) => {
    throw new InvalidError(
      `Cannot read --ca-key-passphrase-file "${config.caKeyPassphraseFile}": ${error.message}`,
    );
  });
  return text.trim() || undefined;
}

/**
 * Opens (or creates) the CA and the join tokens' signing key, with the key passphrase and the
 * imported CA the flags give: in the data directory on SQLite; on a shared store (PostgreSQL) in
 * the database, keys encrypted under the passphrase, which every replica must then be given.
 * `renew`: renew a due intermediate now (the leader's duty).
 */
export async function openCa(
  config: ServerConfig,
  clock: Clock,
  options: { store: Store; renew: boolean },
): Promise<{ authority: CertificateAuthority; joinTokens: JoinTokens }> {
  const passphrase = await caKeyPassphrase(config);
  const shared = options.store.caMaterial;
  if (shared && passphrase === undefined) {
    throw new InvalidError(
      "Cannot start a replica on PostgreSQL without the CA key passphrase: give every replica " +
        "the same --ca-key-passphrase-file FILE (or IRONMESH_CA_KEY_PASSPHRASE); the CA's keys " +
        "are kept in the database encrypted under it",
    );
  }
  const material = shared
    ? new StoreMaterial(shared, "the PostgreSQL database")
    : new DirectoryMaterial(join(config.dataDir, CA_DIR));
  try {
    const authority = await CertificateAuthority.open({
      dir: join(config.dataDir, CA_DIR),
      material,
      trustDomain: config.trustDomain,
      clock,
      maxLeafTtlMs: config.maxLeafTtl,
      renew: options.renew,
      ...(passphrase ? { passphrase } : {}),
      ...(config.caCert && config.caKey && config.caChain
        ? { import: { certFile: config.caCert, keyFile: config.caKey, chainFile: config.caChain } }
        : {}),
    });
    // On SQLite a new key stays a plain file, as it always was (one moved here from a database
    // by `ironmesh migrate` is encrypted and read with the passphrase); in the database it is
    // always encrypted.
    const joinTokens = await JoinTokens.open(options.store, clock, {
      material: shared ? material : new DirectoryMaterial(config.dataDir),
      name: TOKEN_KEY,
      passphrase,
      encryptNew: shared !== undefined,
    });
    return { authority, joinTokens };
  } catch (error) {
    if (shared && error instanceof InvalidError && /passphrase is wrong/.test(error.message)) {
      throw new InvalidError(
        "Cannot open the CA kept in the PostgreSQL database: the CA key passphrase " +
          "(--ca-key-passphrase-file or IRONMESH_CA_KEY_PASSPHRASE) is not the one its keys " +
          `were encrypted with; give every replica the same passphrase (${error.message})`,
      );
    }
    throw error;
  }
}

/**
 * A serving certificate for the TLS port: loopback names, the host name, the
 * bound address when it is a specific one, and the operator's `--tls-san`.
 */
export async function issueServingCertificate(
  authority: CertificateAuthority,
  config: ServerConfig,
  bind: HostPort,
): Promise<TlsMaterial> {
  const names = ["localhost", Deno.hostname().toLowerCase(), "127.0.0.1", "::1", ...config.tlsSan];
  if (!WILDCARD.has(bind.host)) names.push(bind.host);
  const ips = [...new Set(names.filter((n) => isIP(n) !== 0))];
  const dns = [...new Set(names.filter((n) => isIP(n) === 0))];
  const issued = await authority.issueServerCertificate({
    dnsNames: dns,
    ipAddresses: ips,
    ttlMs: config.leafTtl,
  });
  return { key: issued.keyPem, cert: issued.chainPem, ca: authority.bundle().pem };
}

const WILDCARD = new Set(["0.0.0.0", "::", "[::]"]);

/** Envoy says so in its user agent; anything else speaking ADS here is a proxyless gRPC client. */
export function proxyKind(node: NodeInfo): ProxyPeer["kind"] {
  const declared = node.metadata?.["IRONMESH_PROXY"];
  if (declared === "sidecar" || declared === "proxyless") return declared;
  return node.user_agent_name === "envoy" ? "sidecar" : "proxyless";
}

/**
 * Who a proxy on the loopback plaintext listener says it is (node metadata
 * `IRONMESH_NODE` / `IRONMESH_NAMESPACE`, else its node id): trusted only
 * because that listener binds to loopback, for local tools and tests.
 */
export function claimedPeer(node: NodeInfo, trustDomain: string): ProxyPeer {
  const name = String(node.metadata?.["IRONMESH_NODE"] ?? node.id ?? "local");
  const namespace = String(node.metadata?.["IRONMESH_NAMESPACE"] ?? "default");
  return {
    node: name,
    identity: spiffeId(trustDomain, namespace, "default"),
    kind: proxyKind(node),
    ...(hasCertificateProvider(node) ? { mtls: true } : {}),
  };
}

/** The node's bootstrap has the mesh's certificate provider (`core/grpc_bootstrap.ts`). */
export function hasCertificateProvider(node: NodeInfo): boolean {
  return proxyKind(node) === "proxyless" &&
    node.metadata?.[CERTIFICATE_PROVIDER_METADATA] === GRPC_CERTIFICATE_PROVIDER;
}

/** The short xDS type name for metric labels (`Listener`, `Cluster`, …), a bounded set. */
export function typeLabel(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf(".") + 1);
}

/** The address to put in join tokens: the bound one, or the host name for a wildcard bind. */
export function advertisedHost(bound: HostPort): HostPort {
  return WILDCARD.has(bound.host)
    ? { host: Deno.hostname().toLowerCase(), port: bound.port }
    : bound;
}

/** Opens the store the `--store` URL names (default: SQLite in the data directory). */
export async function openStore(config: ServerConfig): Promise<Store> {
  const url = config.store ?? `sqlite:${config.dataDir}/ironmesh.db`;
  if (url.startsWith("sqlite:")) {
    return openSqliteStore(url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, ""));
  }
  if (isPostgresUrl(url)) {
    if (!URL.canParse(url)) {
      throw new InvalidError(
        `Invalid --store: not a URL; expected postgres://USER@HOST:PORT/DATABASE`,
      );
    }
    return await openPostgresStore(url);
  }
  throw new InvalidError(
    `Invalid --store "${url}": expected sqlite:PATH or postgres://USER@HOST:PORT/DATABASE`,
  );
}

/**
 * Makes sure a working admin token is in `file` (mode 0600). A later start
 * reuses it; if the file was deleted or the token revoked, a new one
 * replaces it (the old one is revoked, since nobody can use it any more), so
 * an operator can never lock themselves out of a server they can log into.
 */
export async function ensureAdminToken(
  store: Store,
  tokens: TokenService,
  file: string,
  log: Logger,
) {
  const existingId = await store.getMeta(ADMIN_TOKEN_META);
  const onDisk = await Deno.readTextFile(file).then((t) => t.trim(), () => null);
  if (existingId && onDisk) {
    const usable = await tokens.verify(onDisk).then(() => true, () => false);
    if (usable) return;
  }
  // On a shared store the recorded token may be another replica's, whose file is on its own
  // machine: keep it working there and give this replica a token of its own.
  if (existingId && !store.log) {
    await tokens.revoke(existingId).catch(() => {});
    log.warn("Admin token file missing, changed or revoked: issued a new admin token", { file });
  }
  const created = await tokens.create({
    kind: "api",
    role: "admin",
    description: "bootstrap admin token",
  });
  const tmp = `${file}.tmp`;
  await Deno.writeTextFile(tmp, created.token + "\n", { mode: 0o600 });
  await Deno.chmod(tmp, 0o600);
  await Deno.rename(tmp, file);
  await store.setMeta(ADMIN_TOKEN_META, created.id);
}
