/**
 * How the agent gets its identity: resume the one saved in the data
 * directory, or enrol with a join token.
 *
 * Enrolment trusts the server on first use by pin. The agent fetches the
 * public root list without verifying TLS (it has nothing to verify with yet),
 * hashes each root's DER itself and requires the join token's pin among
 * them. From then on it trusts only that pinned root, so a man in the middle
 * that answered the first request with the real roots still cannot complete
 * the verified TLS handshake of the enrol request. The enrol answer, received
 * over that verified connection, brings the bundle trusted afterwards.
 */
import { request } from "node:https";
import { z } from "zod";
import type { Clock } from "../core/clock.ts";
import { formatDuration } from "../core/duration.ts";
import { InvalidError } from "../core/errors.ts";
import {
  decodeJoinToken,
  type JoinTokenClaims,
  joinTokenCommand,
  joinTokenIdentity,
} from "../core/join_token.ts";
import type { Logger } from "../core/log.ts";
import { backoffDelay } from "./backoff.ts";
import { type Identity, identityDir, loadIdentity, saveIdentity } from "./identity.ts";
import {
  createCsr,
  describeLeaf,
  fingerprint,
  generateKeyPair,
  parseCertificates,
  privateKeyPem,
  samePublicKey,
} from "./pki.ts";
import { rejection } from "../client/api_client.ts";
import { type ApiResult, ServerApi } from "./server_api.ts";
import { ClientPool } from "./tls_clients.ts";
import { sleep } from "./wait.ts";

/** The answer of `GET /v1/ca/roots`; only what the agent reads. */
export const rootsReplySchema = z.object({
  trustDomain: z.string(),
  roots: z.array(z.object({ pem: z.string() })),
  bundlePem: z.string().min(1),
  bundleFingerprint: z.string().min(1),
  // Absent from servers older than this field.
  retiredRoots: z.array(z.object({ fingerprint: z.string(), generation: z.number() })).optional(),
});

/** The answer of `POST /v1/ca/enrol` and `POST /v1/ca/renew`; only what the agent reads. */
export const issuedReplySchema = z.object({
  node: z.string(),
  identity: z.string(),
  certificate: z.string().min(1),
  bundle: z.string().min(1),
  bundleFingerprint: z.string().min(1),
});

/** The largest answer read from the unverified first contact. */
const MAX_UNVERIFIED_BYTES = 1 << 20;

/**
 * The message for a certificate that expired: it cannot renew itself (the
 * server only renews a valid one), so the fix is a new join token.
 */
export function expiredMessage(node: string, notAfter: number, identity: string): string {
  const match = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(identity);
  const command = joinTokenCommand({ ns: match?.[1], sa: match?.[2], node });
  return `Certificate for node "${node}" expired at ${
    new Date(notAfter).toISOString()
  }: an expired certificate cannot renew itself. Create a join token (${command}) and restart the agent with --join-token`;
}

/**
 * Reads a certificate the server issued for `keys` and checks it is what was
 * asked for: our public key, `CN=<node>`, the SPIFFE ID as URI SAN. Throws
 * an {@link InvalidError} otherwise. `server`, `keyPem` and `receivedAt`
 * complete the {@link Identity}.
 */
export async function acceptIssued(
  body: unknown,
  expected: {
    keys: CryptoKeyPair;
    keyPem: string;
    node: string;
    server: string;
    receivedAt: number;
  },
): Promise<Identity> {
  const parsed = issuedReplySchema.safeParse(body);
  if (!parsed.success) {
    throw new InvalidError(
      `Invalid answer from server "${expected.server}": ${parsed.error.issues[0]?.message ?? ""}`,
    );
  }
  const reply = parsed.data;
  const chain = parseCertificates(reply.certificate, "certificate from the server");
  parseCertificates(reply.bundle, "trust bundle from the server");
  const leaf = chain[0]!;
  if (!(await samePublicKey(expected.keys.publicKey, leaf))) {
    throw new InvalidError(
      `Server "${expected.server}" returned a certificate for another key: refusing it`,
    );
  }
  const info = describeLeaf(leaf);
  if (info.commonName !== expected.node || !info.uris.includes(reply.identity)) {
    throw new InvalidError(
      `Server "${expected.server}" returned a certificate for CN "${info.commonName}" and URIs "${
        info.uris.join(", ")
      }", not for node "${expected.node}" and "${reply.identity}": refusing it`,
    );
  }
  return {
    node: expected.node,
    identity: reply.identity,
    server: expected.server,
    keyPem: expected.keyPem,
    certPem: reply.certificate.endsWith("\n") ? reply.certificate : reply.certificate + "\n",
    bundlePem: reply.bundle.endsWith("\n") ? reply.bundle : reply.bundle + "\n",
    bundleFingerprint: reply.bundleFingerprint,
    leaf: info,
    receivedAt: expected.receivedAt,
  };
}

/**
 * `GET url` over TLS without verifying the server's certificate. Used once,
 * for the public root list, whose content the caller then checks against
 * the pin; `node:https` because `fetch` cannot skip verification per request.
 */
export function fetchUnverified(
  url: URL,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ApiResult<unknown>> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (result: ApiResult<unknown>) => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const req = request(url, {
      method: "GET",
      rejectUnauthorized: false,
      // No keep-alive pool: this is the only call made this way.
      agent: false,
      timeout: timeoutMs,
      signal,
      headers: { accept: "application/json" },
    }, (res) => {
      const chunks: Uint8Array[] = [];
      let size = 0;
      res.on("data", (chunk: Uint8Array) => {
        size += chunk.length;
        if (size > MAX_UNVERIFIED_BYTES) {
          req.destroy();
          settle({ kind: "unreachable", error: "Answer larger than 1 MiB" });
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () => {
        const bytes = new Uint8Array(size);
        let offset = 0;
        for (const chunk of chunks) {
          bytes.set(chunk, offset);
          offset += chunk.length;
        }
        const text = new TextDecoder().decode(bytes);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          try {
            settle({ kind: "ok", status, body: JSON.parse(text) });
          } catch {
            settle({ kind: "unreachable", error: "Answer is not JSON" });
          }
        } else {
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (typeof value === "string") headers.set(name, value);
          }
          const answer = { status, statusText: res.statusMessage ?? "", headers, text };
          settle(rejection(answer, { server: url.origin, path: url.pathname }));
        }
      });
      res.on("error", (error) => settle({ kind: "unreachable", error: error.message }));
    });
    req.on("timeout", () => {
      req.destroy();
      settle({ kind: "unreachable", error: `No answer within ${formatDuration(timeoutMs)}` });
    });
    req.on("error", (error) => settle({ kind: "unreachable", error: error.message }));
    req.end();
  });
}

/** One failed attempt worth retrying (no answer, or a server error). */
interface Retry {
  retry: string;
}

function describeRejection(result: Extract<ApiResult<unknown>, { kind: "rejected" }>): string {
  const { status, title, detail } = result.problem;
  return detail ? `${status} ${title}: ${detail}` : `${status} ${title}`;
}

/** Options of {@link enrol}. */
export interface EnrolOptions {
  /** The join token as given. */
  token: string;
  /** Its decoded claims. */
  claims: JoinTokenClaims;
  /** The node name to enrol as. */
  node: string;
  /** Base URLs to try, in order, round robin. */
  servers: string[];
  dataDir: string;
  log: Logger;
  clock: Clock;
  random: () => number;
  timeoutMs: number;
}

async function enrolOnce(
  server: string,
  options: EnrolOptions,
  request: { keys: CryptoKeyPair; keyPem: string; csr: string },
  signal: AbortSignal,
): Promise<Identity | Retry> {
  const { claims, node } = options;
  const base = new URL(server.endsWith("/") ? server : server + "/");
  const roots = await fetchUnverified(new URL("v1/ca/roots", base), options.timeoutMs, signal);
  if (roots.kind === "unreachable") return { retry: roots.error };
  if (roots.kind === "rejected") {
    if (roots.status >= 500) return { retry: describeRejection(roots) };
    throw new InvalidError(
      `Server "${server}" refused the root list (${
        describeRejection(roots)
      }): is this an Ironmesh server?`,
    );
  }
  const parsed = rootsReplySchema.safeParse(roots.body);
  if (!parsed.success) {
    throw new InvalidError(
      `Server "${server}" answered GET /v1/ca/roots with something that is not a root list: is this an Ironmesh server?`,
    );
  }
  let pinned: string | undefined;
  for (const root of parsed.data.roots) {
    const certs = parseCertificates(root.pem, `root from server "${server}"`);
    if (await fingerprint(certs[0]!) === claims.pin) pinned = root.pem;
  }
  if (pinned === undefined) {
    // The server's word that the pinned root is retired is not verified, and needs no proof: the
    // enrolment is refused all the same; only the advice differs.
    const retired = parsed.data.retiredRoots?.find((r) => `sha256:${r.fingerprint}` === claims.pin);
    if (retired !== undefined) {
      const command = joinTokenCommand({ ns: claims.ns, sa: claims.sa, node: claims.node ?? node });
      throw new InvalidError(
        `The join token predates a root rotation on server "${server}": it pins the root of CA ` +
          `generation ${retired.generation}, which the server has retired, so it can no longer ` +
          `enrol a host. Create a new join token on the server: ${command}`,
      );
    }
    throw new InvalidError(
      `Server "${server}" presented no root matching the join token's pin "${claims.pin}": refusing to enrol (possible man-in-the-middle)`,
    );
  }
  if (parsed.data.trustDomain !== claims.td) {
    throw new InvalidError(
      `Server "${server}" serves trust domain "${parsed.data.trustDomain}" but the join token is for "${claims.td}": refusing to enrol`,
    );
  }

  // Verified TLS from here on, against the pinned root only (see the module comment).
  const pool = new ClientPool({ caPem: pinned });
  try {
    const api = new ServerApi(server, { clients: pool, timeoutMs: options.timeoutMs });
    const result = await api.enrol({ token: options.token, csr: request.csr, node }, { signal });
    if (result.kind === "unreachable") return { retry: result.error };
    if (result.kind === "rejected") {
      if (result.status >= 500 || result.status === 429) {
        return { retry: describeRejection(result) };
      }
      const why = describeRejection(result);
      const command = joinTokenCommand({ ns: claims.ns, sa: claims.sa, node: claims.node ?? node });
      if (result.status === 401 || result.status === 409) {
        throw new InvalidError(
          `Server "${server}" refused the join token (${why}): a join token works once and only until it expires; create a new one with ${command}`,
        );
      }
      if (result.status === 403) {
        throw new InvalidError(
          `Server "${server}" refused identity "${
            joinTokenIdentity(claims)
          }" for node "${node}" (${why})`,
        );
      }
      if (result.status === 400 || result.status === 422) {
        throw new InvalidError(`Server "${server}" refused the certificate request (${why})`);
      }
      throw new InvalidError(`Server "${server}" refused the enrolment (${why})`);
    }
    return await acceptIssued(result.body, {
      ...request,
      node,
      server,
      receivedAt: options.clock.now(),
    });
  } finally {
    pool.close();
  }
}

/**
 * Enrols with a join token: new key pair, CSR, pinned first contact,
 * verified enrol request; saves the identity and returns it. Retries
 * unreachable servers and server errors with backoff (the host may boot
 * before the network or the server is ready) until the token expires; any
 * refusal is final and thrown as an {@link InvalidError}. Returns
 * `undefined` when `signal` aborts first.
 */
export async function enrol(
  options: EnrolOptions,
  signal: AbortSignal,
): Promise<Identity | undefined> {
  const { claims, node, log } = options;
  const keys = await generateKeyPair();
  const keyPem = await privateKeyPem(keys.privateKey);
  const csr = await createCsr(keys, node, joinTokenIdentity(claims));
  for (let attempt = 0; !signal.aborted; attempt++) {
    if (options.clock.now() >= claims.exp * 1000) {
      // Decoding again yields the one "expired" message with the fix.
      decodeJoinToken(options.token, options.clock);
    }
    const server = options.servers[attempt % options.servers.length]!;
    log.info("Enrolling", {
      node,
      server,
      identity: joinTokenIdentity(claims),
      tokenId: claims.jti,
    });
    const outcome = await enrolOnce(server, options, { keys, keyPem, csr }, signal);
    if (signal.aborted) return undefined;
    if (!("retry" in outcome)) {
      await saveIdentity(options.dataDir, outcome);
      log.info("Enrolled", {
        node,
        identity: outcome.identity,
        server,
        serial: outcome.leaf.serial,
        notAfter: new Date(outcome.leaf.notAfter).toISOString(),
        dir: identityDir(options.dataDir),
      });
      return outcome;
    }
    const delay = backoffDelay(attempt, { baseMs: 500, capMs: 30_000 }, options.random);
    log.warn("Enrolment failed; retrying", {
      node,
      server,
      error: outcome.retry,
      attempt: attempt + 1,
      retryIn: formatDuration(delay),
    });
    await sleep(delay, signal);
  }
  return undefined;
}

/** Options of {@link establishIdentity}. */
export interface EstablishOptions {
  dataDir: string;
  /** The node name this agent runs as. */
  node: string;
  /** `--server`: overrides the join token's addresses and the saved one. */
  server?: string | undefined;
  /** `--join-token`; needed only when there is no usable identity. */
  joinToken?: string | undefined;
  log: Logger;
  clock: Clock;
  random: () => number;
  timeoutMs: number;
}

/**
 * The identity to run with: the saved one when it is valid and for this
 * node, otherwise a new one from the join token. Throws an
 * {@link InvalidError} saying what to do when neither is possible; returns
 * `undefined` when `signal` aborts during enrolment.
 */
export async function establishIdentity(
  options: EstablishOptions,
  signal: AbortSignal,
): Promise<Identity | undefined> {
  const { log, node, joinToken } = options;
  const dir = identityDir(options.dataDir);
  const loaded = await loadIdentity(options.dataDir);
  if (loaded.kind === "ok") {
    const saved = loaded.identity;
    if (saved.node !== node) {
      if (joinToken === undefined) {
        throw new InvalidError(
          `Identity in "${dir}" is for node "${saved.node}", but this agent's node name is "${node}": set node.name back, or restart the agent with --join-token for "${node}"`,
        );
      }
      log.warn("Saved identity is for another node; enrolling again with the join token", {
        saved: saved.node,
        node,
      });
    } else if (options.clock.now() < saved.leaf.notAfter) {
      if (joinToken !== undefined) {
        log.info("Join token ignored: this host already has an identity", {
          node,
          identity: saved.identity,
          notAfter: new Date(saved.leaf.notAfter).toISOString(),
        });
      }
      log.info("Resuming with the saved identity", {
        node,
        identity: saved.identity,
        serial: saved.leaf.serial,
        notAfter: new Date(saved.leaf.notAfter).toISOString(),
      });
      return { ...saved, server: options.server ?? saved.server };
    } else if (joinToken === undefined) {
      throw new InvalidError(expiredMessage(node, saved.leaf.notAfter, saved.identity));
    } else {
      log.warn("Certificate expired; enrolling again with the join token", {
        node,
        notAfter: new Date(saved.leaf.notAfter).toISOString(),
      });
    }
  } else if (loaded.kind === "broken") {
    if (joinToken === undefined) {
      throw new InvalidError(
        `Cannot use the identity in "${dir}": ${loaded.reason}. Create a join token (${
          joinTokenCommand({ node })
        }) and restart the agent with --join-token`,
      );
    }
    log.warn("Saved identity unusable; enrolling again with the join token", {
      reason: loaded.reason,
    });
  } else if (joinToken === undefined) {
    throw new InvalidError(
      `No identity in "${dir}" and no join token: create one (${
        joinTokenCommand({ node })
      }) and start the agent with --join-token or --join-token-file`,
    );
  }

  const claims = decodeJoinToken(joinToken, options.clock);
  if (claims.node !== undefined && claims.node !== node) {
    throw new InvalidError(
      `Join token is for node "${claims.node}" but this agent's node name is "${node}": set node.name in the agent configuration, or create a token for "${node}" (${
        joinTokenCommand({ ns: claims.ns, sa: claims.sa, node })
      })`,
    );
  }
  const servers = options.server !== undefined ? [options.server] : claims.srv;
  if (servers.length === 0) {
    throw new InvalidError("No server to enrol with: the join token names none; pass --server URL");
  }
  return await enrol({ ...options, token: joinToken, claims, servers }, signal);
}
