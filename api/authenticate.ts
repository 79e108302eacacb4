/**
 * Authentication of the REST API: a mesh certificate proven over mTLS (the
 * `agent` role for its own node) or a bearer token. The certificate is
 * checked once per connection (chain, shape) and on every request (deny
 * list, expiry), so a revocation takes effect on the very next request.
 */
import type { Context, MiddlewareHandler } from "hono";
import { TLSSocket } from "node:tls";
import type { TokenService } from "../auth/tokens.ts";
import type { CertificatePrincipal, IdentityService } from "../ca/identity.ts";
import { UnauthorizedError } from "../core/errors.ts";
import type { ApiEnv } from "./operation.ts";

/** Options of {@link authentication}. */
export interface AuthenticationOptions {
  /** Checks client certificates. */
  identity: IdentityService;
  /** Checks bearer tokens. */
  tokens: TokenService;
}

/** What {@link authentication} builds. */
export interface Authentication {
  /** Sets `principal` from the mTLS certificate or the bearer token, or refuses with a 401. */
  authenticate: MiddlewareHandler<ApiEnv>;
  /** The certificate the TLS peer proved, `null` when none; throws a 401 when it is not good. */
  certificateOf(c: Context): CertificatePrincipal | null;
}

/** Builds the authentication middleware of one app. */
export function authentication(options: AuthenticationOptions): Authentication {
  const { identity, tokens } = options;
  if (!identity || !tokens) {
    throw new TypeError("Authentication needs the identity service and the token service");
  }
  const peers = new WeakMap<object, CertificatePrincipal | Error>();

  function certificateOf(c: Context): CertificatePrincipal | null {
    const socket = tlsSocketOf(c.env);
    if (!socket) return null;
    let known = peers.get(socket);
    if (known === undefined) {
      const peer = socket.getPeerCertificate(true);
      if (!peer || Object.keys(peer).length === 0) return null;
      try {
        known = identity.authenticate(socket.authorized, socket.authorizationError, peer);
      } catch (error) {
        known = error as Error;
      }
      peers.set(socket, known);
    }
    if (known instanceof Error) throw known;
    if (identity.isRevoked(known.serial)) {
      throw new UnauthorizedError(`Client certificate ${known.serial} has been revoked`);
    }
    if (Date.parse(known.notAfter) <= Date.now()) {
      throw new UnauthorizedError(
        "Client certificate has expired: an expired certificate cannot renew itself; re-enrol the host with a new join token",
      );
    }
    return known;
  }

  const authenticate: MiddlewareHandler<ApiEnv> = async function authenticate(c, next) {
    const certificate = certificateOf(c);
    if (certificate) {
      c.set("principal", {
        tokenId: `x509:${certificate.node}`,
        role: "agent",
        node: certificate.node,
        certificate,
      });
      await next();
      return;
    }
    const header = c.req.header("authorization");
    if (!header) {
      throw new UnauthorizedError(
        'Missing Authorization header: send "Authorization: Bearer <token>"',
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) {
      throw new UnauthorizedError('Malformed Authorization header: expected "Bearer <token>"');
    }
    c.set("principal", await tokens.verify(match[1]!));
    await next();
  };
  return { authenticate, certificateOf };
}

/** The TLS socket under a request served by `node:https`, or `null` (plain HTTP, tests). */
function tlsSocketOf(env: unknown): TLSSocket | null {
  const socket = (env as { incoming?: { socket?: unknown } } | undefined)?.incoming?.socket;
  return socket instanceof TLSSocket ? socket : null;
}
